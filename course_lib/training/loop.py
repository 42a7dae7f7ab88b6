"""One training loop for the whole course: :func:`fit`.

A training loop is always the same five lines -- forward, loss, backward,
optimizer step, zero the gradients -- plus the bookkeeping that makes it
usable: pick a device, seed the randomness, show a progress bar, evaluate now
and then, and keep a :class:`~course_lib.training.History` that plots can
read.  ``fit`` does exactly that and nothing hidden::

    hist = fit(model, batches, loss_fn=F.cross_entropy, epochs=3, lr=1e-3,
               val_fn=classification_metrics(val_batches))
    print(hist.as_table())

``train_data`` is any iterable of ``(inputs, targets)`` batches (a list, a
``DataLoader``) or a callable returning a fresh iterator each epoch
(:func:`tensor_batches` makes one from images and their targets).  Without
``loss_fn`` the model decides: ``model.loss(outputs, targets)`` (a course
``Model``: its head's loss, or the weighted sum of its heads'), else
``model.head.loss``.  A loss may be a tensor or a dict of named tensors
(``{"loss": total, "box": ..., "cls": ...}``); the parts are recorded too.

Inside, :class:`_Run` holds one call's state and does one job per method:
:meth:`~_Run.step` (one optimizer step), :meth:`~_Run.evaluate`,
:meth:`~_Run.epoch` and :meth:`~_Run.train` (epochs until a budget is spent).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..measure import evaluating
from .history import History

#: What a ``time_budget_s`` is measured on.  ``"wall"``: seconds on the wall clock (what the learner waits);
#: ``"cpu"``: the CPU seconds this process used, which other programs on a shared machine do not eat into
#: (with one torch thread, the same as the wall clock on an idle core): the fair clock for comparing arms.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}

Batch = tuple[Any, Any]
TrainData = Iterable[Batch] | Callable[[], Iterable[Batch]]


# ----------------------------------------------------------------- devices and seeds
def auto_device(prefer: str | torch.device = "auto") -> torch.device:
    """The fastest device available: CUDA GPU, then Apple's MPS, then the CPU.

    ``prefer`` may name a device (``"cpu"``, ``"cuda:0"``); ``"auto"`` chooses.
    """
    if isinstance(prefer, torch.device):
        return prefer
    if not isinstance(prefer, str):
        raise TypeError(f"device must be 'auto', a device name like 'cpu' or a torch.device, got {prefer!r}")
    if prefer != "auto":
        try:
            dev = torch.device(prefer)
        except RuntimeError as err:
            raise ValueError(f"unknown device {prefer!r} ({err}); use 'auto', 'cpu', 'cuda' or 'mps'") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use device='auto'")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random generators (CPU and GPU) with one number."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def to_device(obj: Any, device: torch.device) -> Any:
    """Move tensors to ``device``, looking inside dicts, lists and tuples (detection targets)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return type(obj)((k, to_device(v, device)) for k, v in obj.items())
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(to_device(v, device) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


# ----------------------------------------------------------------- data and parameters
def tensor_batches(inputs: torch.Tensor, targets: torch.Tensor | Sequence[Any], batch_size: int = 32,
                   shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                   channels_last: bool = False) -> Callable[[], Iterator[Batch]]:
    """Cut inputs and their targets into ``(inputs, targets)`` batches; call the result once per epoch.

    ``targets`` is a tensor (class labels) or a list (one detection target dict per
    image).  ``uint8`` images, such as ``ShapesWorld.materialize()``'s memory-light
    copy, become floats in [0, 1] batch by batch::

        tensor_batches(*ShapesWorld("train").materialize(), batch_size=32, drop_last=True)

    Shuffling uses its own generator (``seed`` + the epoch number), so the batch
    order is the same on every run and does not disturb other random numbers.
    ``drop_last`` keeps full batches only; ``channels_last`` stores the images as
    (N, H, W, C) in memory, the layout the CPU's convolution kernels prefer (for
    a model moved with ``.to(memory_format=torch.channels_last)``).
    """
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, (torch.Tensor, Sequence)):
        raise TypeError("tensor_batches expects a tensor of inputs and a tensor or list of targets")
    if len(inputs) != len(targets):
        raise ValueError(f"inputs and targets differ in length: {len(inputs)} vs {len(targets)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    n = len(inputs)
    epoch = [0]

    def pick(idx: torch.Tensor) -> Batch:
        x = inputs[idx]
        x = x.float().div_(255) if x.dtype == torch.uint8 else x
        y = targets[idx] if isinstance(targets, torch.Tensor) else [targets[j] for j in idx.tolist()]
        return x, y

    def batches() -> Iterator[Batch]:
        if shuffle:
            g = torch.Generator().manual_seed(seed + epoch[0])
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        epoch[0] += 1
        for i in range(0, n - batch_size + 1 if drop_last else n, batch_size):
            yield pick(order[i: i + batch_size])

    batches.num_batches = n // batch_size if drop_last else math.ceil(n / batch_size)  # type: ignore[attr-defined]
    return batches


def classification_metrics(data: TrainData, prefix: str = "val_") -> Callable[[nn.Module], dict[str, float]]:
    """A ``val_fn`` for classifiers: mean cross-entropy and accuracy over ``data``.

    The model must return logits ``(B, num_classes)``.
    """

    @torch.no_grad()
    def val_fn(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        total, correct, loss_sum = 0, 0, 0.0
        for x, y in _iterate(data):
            x, y = to_device(x, device), to_device(y, device)
            logits = model(x)
            loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
        if total == 0:
            raise ValueError("the validation data gave no batches")
        return {f"{prefix}loss": loss_sum / total, f"{prefix}acc": correct / total}

    return val_fn


def param_groups(model: nn.Module, lrs: Mapping[str, float], default_lr: float | None = None) -> list[dict]:
    """Parameter groups with one learning rate per part: ``{"backbone": 1e-4, "head": 1e-3}``.

    Keys are prefixes of parameter names (``"backbone"`` matches
    ``backbone.stages.C2.0.weight``).  Parameters no key matches get
    ``default_lr`` (or raise if it is ``None``); frozen parameters
    (``requires_grad=False``) are left out.  Pass the result as ``fit(optimizer=...)``.
    """
    groups: dict[str, list[nn.Parameter]] = {k: [] for k in lrs}
    rest: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = next((k for k in lrs if name == k or name.startswith(k + ".")), None)
        (groups[key] if key is not None else rest).append(p)
    if rest and default_lr is None:
        raise ValueError(
            f"{len(rest)} trainable parameters match none of {list(lrs)}; give default_lr or add their prefix"
        )
    out = [{"params": ps, "lr": lrs[k], "name": k} for k, ps in groups.items() if ps]
    if rest:
        out.append({"params": rest, "lr": default_lr, "name": "rest"})
    return out


def freeze(module: nn.Module) -> nn.Module:
    """Stop a module from learning: ``requires_grad=False`` on every parameter.

    :func:`fit` also keeps the BatchNorm layers of fully frozen parts in eval
    mode, so their running statistics stay the pretrained ones ("frozen"
    really means frozen).
    """
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Freeze only the BatchNorm layers (scale, shift and running statistics); the convolutions still learn.

    The usual recipe for fine-tuning on a small data set with small batches:
    a batch of 28 grey faces is a poor estimate of the statistics ImageNet's
    BatchNorm layers learned, so they are kept as they were.
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for p in m.parameters():
                p.requires_grad_(False)
    return module


# ----------------------------------------------------------------- the loop
def _iterate(data: TrainData) -> Iterable[Batch]:
    return data() if callable(data) and not hasattr(data, "__iter__") else data


def _num_batches(data: TrainData) -> int | None:
    n = getattr(data, "num_batches", None)
    if n is not None:
        return int(n)
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return None


def _default_loss(model: nn.Module) -> Callable[[Any, Any], Any]:
    """The model's own loss (a course Model: its head's, or its heads' weighted sum), else ``model.head.loss``."""
    for owner in (model, getattr(model, "head", None)):
        if owner is not None and callable(getattr(owner, "loss", None)):
            return owner.loss
    raise ValueError(
        f"fit() needs loss_fn=... for a {type(model).__name__} (it has no .head with a loss method); "
        "e.g. loss_fn=torch.nn.functional.cross_entropy for class logits"
    )


def _total_loss(out: Any) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(out, torch.Tensor):
        if out.ndim != 0:
            raise ValueError(f"the loss must be a single number (0-d tensor), got shape {tuple(out.shape)}; "
                             "reduce it with .mean()")
        return out, {}
    if isinstance(out, Mapping):
        parts = {k: float(v.detach()) for k, v in out.items() if isinstance(v, torch.Tensor) and v.ndim == 0}
        for key in ("loss", "total"):
            if key in out:
                return out[key], {k: v for k, v in parts.items() if k != key}
        tensors = [v for v in out.values() if isinstance(v, torch.Tensor)]
        if not tensors:
            raise ValueError("the loss dict holds no tensors")
        return sum(tensors), parts  # type: ignore[return-value]
    raise TypeError(f"the loss function returned a {type(out).__name__}; return a tensor or a dict of tensors")


def _make_optimizer(model: nn.Module, optimizer: Any, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if optimizer is None:
        params: Any = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("every parameter of the model is frozen (requires_grad=False): nothing to train")
    elif isinstance(optimizer, Sequence) and all(isinstance(g, Mapping) and "params" in g for g in optimizer):
        params = [dict(g) for g in optimizer]  # extra keys such as "name" are kept by torch
    else:
        raise TypeError("optimizer must be None, a torch.optim.Optimizer or a list of parameter-group dicts "
                        "(see course_lib.training.param_groups)")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _frozen_norms_to_eval(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            ps = list(m.parameters(recurse=False))
            if ps and not any(p.requires_grad for p in ps):
                m.eval()


@contextlib.contextmanager
def _cudnn_deterministic(on: bool) -> Iterator[None]:
    """cuDNN's exact (slower) kernels for the duration, if asked; the settings are restored after."""
    cudnn = torch.backends.cudnn
    saved = (cudnn.deterministic, cudnn.benchmark)
    if on:
        cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = saved


def _check_arguments(model: Any, train_data: Any, epochs: int | None, steps: int | None,
                     time_budget_s: float | None, eval_every: int | None, clock: str = "wall") -> None:
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"fit() trains a torch.nn.Module, got {type(model).__name__}")
    if epochs is None and steps is None and time_budget_s is None:
        raise ValueError("fit() needs a budget: epochs=..., steps=... and/or time_budget_s=...")
    for name, v in (("epochs", epochs), ("steps", steps), ("eval_every", eval_every)):
        if v is not None and (not isinstance(v, int) or v < 1):
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if time_budget_s is not None and time_budget_s <= 0:
        raise ValueError(f"time_budget_s must be positive, got {time_budget_s!r}")
    if not (callable(train_data) or hasattr(train_data, "__iter__")):
        raise TypeError("train_data must be an iterable of (inputs, targets) batches or a callable returning one")
    if isinstance(train_data, Iterator) and (epochs or 0) > 1:
        raise ValueError("train_data is a one-shot iterator, so it cannot give several epochs; pass a list, "
                         "a DataLoader or a function that returns a new iterator (see tensor_batches)")


class _Run:
    """One call of :func:`fit`: the model, its optimizer and budget, the history being written."""

    def __init__(self, model: nn.Module, train_data: TrainData, loss_fn: Callable, optimizer: torch.optim.Optimizer,
                 device: torch.device, *, epochs: int | None, steps: int | None, time_budget_s: float | None,
                 val_fn: Callable | None, eval_every: int | None, callback: Callable | None,
                 grad_clip: float | None, lr: float, bar: Any, stop_when: Callable | None = None,
                 clock: str = "wall"):
        self.model, self.data, self.loss_fn, self.opt, self.device = model, train_data, loss_fn, optimizer, device
        self.epochs, self.steps, self.time_budget_s = epochs, steps, time_budget_s
        self.val_fn, self.eval_every, self.callback = val_fn, eval_every, callback
        self.grad_clip, self.lr, self.bar = grad_clip, lr, bar
        self.stop_when, self.stop_reason = stop_when, ""
        self.per_epoch = _num_batches(train_data)
        self.hist = History(device=str(device))
        self.n_steps = 0
        self.since_eval: list[float] = []
        self.clock = CLOCKS[clock]
        self.start, self.cpu_start, self.budget_start = time.perf_counter(), time.process_time(), self.clock()

    def step(self, batch: Any) -> None:
        """Forward, loss, backward, optimizer step; the loss (and its parts) go into the history."""
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError("each batch must be a pair (inputs, targets), "
                             f"got {type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}")
        x, y = to_device(batch[0], self.device), to_device(batch[1], self.device)
        loss, parts = _total_loss(self.loss_fn(self.model(x), y))
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(
                f"the loss became {value} at step {self.n_steps + 1}; lower the learning rate (lr={self.lr}) "
                "or check the targets"
            )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.opt.step()
        self.n_steps += 1
        self.hist.step.append(self.n_steps)
        self.hist.loss.append(value)
        self.since_eval.append(value)
        for k, v in parts.items():
            self.hist.parts.setdefault(k, []).append(v)
        if self.bar is not None:
            self.bar.update(1)
            if self.n_steps % 5 == 0:
                self.bar.set_postfix(loss=f"{value:.4f}", refresh=False)

    def evaluate(self, epoch: float) -> None:
        """Record the mean training loss since the last evaluation and ``val_fn``'s metrics, then call back."""
        hist = self.hist
        hist.eval_step.append(self.n_steps)
        hist.eval_epoch.append(round(epoch, 4))
        row: dict[str, float] = {}
        if self.since_eval:
            row["train_loss"] = float(np.mean(self.since_eval))
        self.since_eval.clear()
        if self.val_fn is not None:
            was = self.model.training
            try:
                with evaluating(self.model):
                    got = self.val_fn(self.model)
            finally:
                if was:
                    _frozen_norms_to_eval(self.model)
            if not isinstance(got, Mapping):
                raise TypeError(f"val_fn must return a dict of metric name -> number, got {type(got).__name__}")
            row.update({k: float(v) for k, v in got.items()})
        n_before = len(hist.eval_step) - 1
        for k, v in row.items():
            hist.metrics.setdefault(k, [float("nan")] * n_before).append(v)
        for vals in hist.metrics.values():  # a metric missing this time is padded
            if len(vals) < len(hist.eval_step):
                vals.append(float("nan"))
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in row.items()}, refresh=False)
        if self.callback is not None:
            self.callback(hist)
        if self.stop_when is not None:
            self.stop_reason = str(self.stop_when(hist) or "")

    def budget_spent(self) -> str:
        """``"steps"`` or ``"time"`` once that budget is used up, ``stop_when``'s reason, else ``""``."""
        if self.stop_reason:
            return self.stop_reason
        if self.steps is not None and self.n_steps >= self.steps:
            return "steps"
        if self.time_budget_s is not None and self.clock() - self.budget_start >= self.time_budget_s:
            return "time"
        return ""

    def epoch(self, epoch: int) -> tuple[str, int]:
        """One pass over the data (cut short by the budget); returns what stopped it and the batches done."""
        n = 0
        for batch in _iterate(self.data):
            self.step(batch)
            n += 1
            stop = self.budget_spent()
            if self.eval_every is not None and self.n_steps % self.eval_every == 0 and not stop:
                self.evaluate(epoch + n / (self.per_epoch or n))
                stop = self.budget_spent()  # stop_when may have ended it
            if stop:
                return stop, n
        if n == 0:
            if self.n_steps == 0:
                raise ValueError("train_data gave no batches")
            return "data", 0  # a one-shot iterator ran dry
        return "", n

    def train(self) -> str:
        """Epochs until a budget is spent, then a last evaluation; returns what stopped training."""
        self.model.train()
        _frozen_norms_to_eval(self.model)
        done, n = 0, 0
        while True:
            if self.epochs is not None and done >= self.epochs:
                stop = "epochs"
                break
            stop, n = self.epoch(done)
            if stop:
                break
            done += 1
            if self.eval_every is None:
                self.evaluate(done)
                if self.stop_reason:
                    stop = self.stop_reason
                    break
        if not self.hist.eval_step or self.hist.eval_step[-1] != self.n_steps:
            self.evaluate(done + (n / self.per_epoch if self.per_epoch and stop in ("steps", "time") else 0))
        return stop


def _planned_steps(epochs: int | None, steps: int | None, per_epoch: int | None) -> int | None:
    by_epochs = epochs * per_epoch if epochs and per_epoch else None
    if steps is not None and by_epochs is not None:
        return min(steps, by_epochs)
    return steps if steps is not None else by_epochs


def fit(
    model: nn.Module,
    train_data: TrainData,
    *,
    loss_fn: Callable[[Any, Any], Any] | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    time_budget_s: float | None = None,
    optimizer: torch.optim.Optimizer | Sequence[Mapping[str, Any]] | None = None,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    val_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
    eval_every: int | None = None,
    device: str | torch.device = "auto",
    seed: int | None = 0,
    progress: bool = True,
    callback: Callable[[History], None] | None = None,
    grad_clip: float | None = None,
    deterministic: bool = False,
    desc: str = "training",
    stop_when: Callable[[History], str] | None = None,
    clock: str = "wall",
) -> History:
    """Train ``model`` on ``train_data`` and return a :class:`History`.

    Stops after ``epochs`` passes, ``steps`` optimizer steps or
    ``time_budget_s`` seconds, whichever comes first (give at least one);
    ``clock="cpu"`` counts that budget in this process's CPU seconds (:data:`CLOCKS`).
    ``optimizer`` is ``None`` (AdamW over the trainable parameters with
    ``lr``), an optimizer, or parameter groups with their own learning rates
    (:func:`param_groups`: e.g. a lower rate for a pretrained backbone).
    ``val_fn(model) -> {"name": value}`` runs in eval mode without gradients
    after each epoch, or every ``eval_every`` steps when given, and once at the
    end; ``callback(history)`` runs after each evaluation (live plots).
    ``stop_when(history)`` also runs after each evaluation: a non-empty string
    (e.g. ``"plateau"``) ends training there and becomes ``history.stopped_by``
    (early stopping; :class:`~course_lib.training.recipes.Plateau` is one).
    ``device="auto"`` picks cuda > mps > cpu and moves the model there.
    ``seed`` seeds every generator first, so a run repeats exactly on the CPU;
    on a GPU, cuDNN picks fast but non-deterministic kernels unless
    ``deterministic=True`` (slower, and exact only for deterministic ops).
    """
    _check_arguments(model, train_data, epochs, steps, time_budget_s, eval_every, clock)
    if seed is not None:
        seed_everything(seed)
    dev = auto_device(device)
    model.to(dev)
    loss_fn = loss_fn if loss_fn is not None else _default_loss(model)
    opt = _make_optimizer(model, optimizer, lr, weight_decay)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=_planned_steps(epochs, steps, _num_batches(train_data)), desc=desc, unit="step", leave=True)
    run = _Run(model, train_data, loss_fn, opt, dev, epochs=epochs, steps=steps, time_budget_s=time_budget_s,
               val_fn=val_fn, eval_every=eval_every, callback=callback, grad_clip=grad_clip, lr=lr, bar=bar,
               stop_when=stop_when, clock=clock)
    try:
        with _cudnn_deterministic(deterministic):
            run.hist.stopped_by = run.train()
    finally:
        if bar is not None:
            bar.close()
        run.hist.seconds = time.perf_counter() - run.start
        run.hist.cpu_seconds = time.process_time() - run.cpu_start
        model.eval()
    return run.hist
