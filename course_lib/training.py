"""One training loop for the whole course: :func:`fit`.

A training loop is always the same five lines -- forward, loss, backward,
optimizer step, zero the gradients -- plus the bookkeeping that makes it
usable: pick a device, seed the randomness, show a progress bar, evaluate now
and then, and keep a :class:`History` that plots can read.  ``fit`` does
exactly that and nothing hidden::

    hist = fit(model, batches, loss_fn=F.cross_entropy, epochs=3, lr=1e-3,
               val_fn=classification_metrics(val_batches))
    print(hist.as_table())

``train_data`` is any iterable of ``(inputs, targets)`` batches (a list, a
``DataLoader``) or a callable returning a fresh iterator each epoch
(:func:`tensor_batches` makes one from two tensors).  Without ``loss_fn`` the
model's own head decides: ``model.head.loss(outputs, targets)``, which is how
the course's detection and segmentation heads train.  A loss may be a tensor
or a dict of named tensors (``{"loss": total, "box": ..., "cls": ...}``); the
parts are recorded too.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

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


# ----------------------------------------------------------------- history
@dataclass
class History:
    """What happened during :func:`fit`, ready to plot.

    * ``step`` / ``loss``: one entry per optimizer step (the training loss of that batch);
    * ``parts``: per-step values of the named parts of a dict loss;
    * ``eval_step`` / ``eval_epoch`` / ``metrics``: one entry per evaluation;
      ``metrics["train_loss"]`` is the mean training loss since the previous
      evaluation, the other keys come from ``val_fn``.
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)
    eval_step: list[int] = field(default_factory=list)
    eval_epoch: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    device: str = "cpu"
    seconds: float = 0.0
    stopped_by: str = ""

    @property
    def steps_done(self) -> int:
        return self.step[-1] if self.step else 0

    def final(self, name: str) -> float:
        """The last recorded value of a metric (``"train_loss"``, ``"val_acc"``, ...)."""
        if name not in self.metrics or not self.metrics[name]:
            raise KeyError(f"no metric {name!r}; recorded: {', '.join(self.metrics) or 'none'}")
        return self.metrics[name][-1]

    def best(self, name: str, mode: str = "max") -> float:
        """The best value a metric reached (``mode="min"`` for losses)."""
        if name not in self.metrics or not self.metrics[name]:
            raise KeyError(f"no metric {name!r}; recorded: {', '.join(self.metrics) or 'none'}")
        vals = self.metrics[name]
        return max(vals) if mode == "max" else min(vals)

    def smoothed_loss(self, window: int = 10) -> list[float]:
        """The per-step loss averaged over the last ``window`` steps (what a curve should show)."""
        out, acc = [], 0.0
        for i, v in enumerate(self.loss):
            acc += v
            if i >= window:
                acc -= self.loss[i - window]
            out.append(acc / min(i + 1, window))
        return out

    def rows(self) -> list[dict[str, float]]:
        """One dict per evaluation: step, epoch and every metric."""
        rows = []
        for i, s in enumerate(self.eval_step):
            row: dict[str, float] = {"step": s, "epoch": self.eval_epoch[i]}
            row.update({k: v[i] for k, v in self.metrics.items() if i < len(v)})
            rows.append(row)
        return rows

    def as_table(self) -> str:
        """A plain-text table, one line per evaluation."""
        rows = self.rows()
        if not rows:
            return "(no evaluation recorded)"
        keys = list(rows[0])
        width = {k: max(len(k), 8) for k in keys}

        def fmt(k: str, v: float) -> str:
            if k == "step":
                return f"{int(v):>{width[k]}d}"
            return f"{v:>{width[k]}.4f}" if isinstance(v, float) else f"{v!s:>{width[k]}}"

        lines = ["  ".join(f"{k:>{width[k]}}" for k in keys)]
        lines += ["  ".join(fmt(k, r.get(k, float("nan"))) for k in keys) for r in rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.metrics.items() if v)
        return f"History({self.steps_done} steps on {self.device}, {self.seconds:.1f}s, stopped by {self.stopped_by}; {last})"


# ----------------------------------------------------------------- data helpers
def tensor_batches(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 32, shuffle: bool = True,
                   seed: int = 0) -> Callable[[], Iterator[Batch]]:
    """Cut two tensors into ``(inputs, targets)`` batches; call the result once per epoch.

    Shuffling uses its own generator (``seed`` + the epoch number), so the batch
    order is the same on every run and does not disturb other random numbers.
    """
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise TypeError("tensor_batches expects two tensors (inputs, targets)")
    if len(inputs) != len(targets):
        raise ValueError(f"inputs and targets differ in length: {len(inputs)} vs {len(targets)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    epoch = [0]

    def batches() -> Iterator[Batch]:
        n = len(inputs)
        if shuffle:
            g = torch.Generator().manual_seed(seed + epoch[0])
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        epoch[0] += 1
        for i in range(0, n, batch_size):
            idx = order[i: i + batch_size]
            yield inputs[idx], targets[idx]

    batches.num_batches = math.ceil(len(inputs) / batch_size)  # type: ignore[attr-defined]
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


def count_trainable(model: nn.Module) -> int:
    """How many parameters the optimizer will change."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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
    head = getattr(model, "head", None)
    if head is not None and callable(getattr(head, "loss", None)):
        return head.loss
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
) -> History:
    """Train ``model`` on ``train_data`` and return a :class:`History`.

    Stops after ``epochs`` passes, ``steps`` optimizer steps or
    ``time_budget_s`` seconds, whichever comes first (give at least one).
    ``optimizer`` is ``None`` (AdamW over the trainable parameters with
    ``lr``), an optimizer, or parameter groups with their own learning rates
    (:func:`param_groups`: e.g. a lower rate for a pretrained backbone).
    ``val_fn(model) -> {"name": value}`` runs in eval mode without gradients
    after each epoch, or every ``eval_every`` steps when given, and once at the
    end; ``callback(history)`` runs after each evaluation (live plots).
    ``device="auto"`` picks cuda > mps > cpu and moves the model there.
    ``seed`` seeds every generator first, so a run repeats exactly on the CPU;
    on a GPU, cuDNN picks fast but non-deterministic kernels unless
    ``deterministic=True`` (slower, and exact only for deterministic ops).
    """
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
    if seed is not None:
        seed_everything(seed)
    dev = auto_device(device)
    model.to(dev)
    loss_fn = loss_fn if loss_fn is not None else _default_loss(model)
    opt = _make_optimizer(model, optimizer, lr, weight_decay)

    hist = History(device=str(dev))
    per_epoch = _num_batches(train_data)
    total = steps if steps is not None else (epochs * per_epoch if epochs and per_epoch else None)
    if steps is not None and epochs and per_epoch:
        total = min(steps, epochs * per_epoch)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit="step", leave=True)

    since_eval: list[float] = []

    def evaluate(epoch_f: float) -> None:
        hist.eval_step.append(step)
        hist.eval_epoch.append(round(epoch_f, 4))
        row: dict[str, float] = {}
        if since_eval:
            row["train_loss"] = float(np.mean(since_eval))
        since_eval.clear()
        if val_fn is not None:
            was = model.training
            model.eval()
            try:
                with torch.no_grad():
                    got = val_fn(model)
            finally:
                model.train(was)
                if was:
                    _frozen_norms_to_eval(model)
            if not isinstance(got, Mapping):
                raise TypeError(f"val_fn must return a dict of metric name -> number, got {type(got).__name__}")
            row.update({k: float(v) for k, v in got.items()})
        n_before = len(hist.eval_step) - 1
        for k, v in row.items():
            hist.metrics.setdefault(k, [float("nan")] * n_before).append(v)
        for vals in hist.metrics.values():  # a metric missing this time is padded
            if len(vals) < len(hist.eval_step):
                vals.append(float("nan"))
        if bar is not None:
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items()}, refresh=False)
        if callback is not None:
            callback(hist)

    cudnn = torch.backends.cudnn
    saved_cudnn = (cudnn.deterministic, cudnn.benchmark)
    if deterministic:
        cudnn.deterministic, cudnn.benchmark = True, False
    step, epoch, start = 0, 0, time.perf_counter()
    model.train()
    _frozen_norms_to_eval(model)
    stop = ""
    try:
        while not stop:
            if epochs is not None and epoch >= epochs:
                stop = "epochs"
                break
            n_in_epoch = 0
            for batch in _iterate(train_data):
                if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                    raise ValueError("each batch must be a pair (inputs, targets), "
                                     f"got {type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}")
                x, y = to_device(batch[0], dev), to_device(batch[1], dev)
                out = model(x)
                loss, parts = _total_loss(loss_fn(out, y))
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"the loss became {value} at step {step + 1}; lower the learning rate (lr={lr}) "
                        "or check the targets"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                opt.step()
                step += 1
                n_in_epoch += 1
                hist.step.append(step)
                hist.loss.append(value)
                since_eval.append(value)
                for k, v in parts.items():
                    hist.parts.setdefault(k, []).append(v)
                if bar is not None:
                    bar.update(1)
                    if step % 5 == 0:
                        bar.set_postfix(loss=f"{value:.4f}", refresh=False)
                if steps is not None and step >= steps:
                    stop = "steps"
                elif time_budget_s is not None and time.perf_counter() - start >= time_budget_s:
                    stop = "time"
                if eval_every is not None and step % eval_every == 0 and not stop:
                    evaluate(epoch + n_in_epoch / (per_epoch or n_in_epoch))
                if stop:
                    break
            if n_in_epoch == 0:
                if step == 0:
                    raise ValueError("train_data gave no batches")
                stop = "data"  # a one-shot iterator ran dry
                break
            if not stop:
                epoch += 1
                if eval_every is None:
                    evaluate(epoch)
        frac = epoch + (n_in_epoch / per_epoch if per_epoch and stop in ("steps", "time") else 0)
        if not hist.eval_step or hist.eval_step[-1] != step:
            evaluate(frac)
    finally:
        if bar is not None:
            bar.close()
        hist.seconds = time.perf_counter() - start
        hist.stopped_by = stop
        cudnn.deterministic, cudnn.benchmark = saved_cudnn
        model.eval()
    return hist


# ----------------------------------------------------------------- live curves
class LiveCurves:
    """A ``callback`` for :func:`fit` that redraws loss and metric curves in place.

    ``LiveCurves(["train_loss", "val_loss"], ["val_acc"])`` draws two panels;
    in a notebook the figure updates after every evaluation.  Call
    :meth:`close` (or use ``figure`` afterwards) to keep a static copy.
    """

    def __init__(self, left: Sequence[str] = ("train_loss", "val_loss"), right: Sequence[str] = ("val_acc",),
                 title: str = "", display: bool = True):
        import matplotlib.pyplot as plt

        self.left, self.right = list(left), list(right)
        self.figure, axes = plt.subplots(1, 2 if self.right else 1, figsize=(8 if self.right else 4.5, 3))
        self.axes = list(np.atleast_1d(axes))
        plt.close(self.figure)  # drawn through the display handle, not twice
        if title:
            self.figure.suptitle(title)
        self._handle = None
        self._display = display
        self.n_updates = 0

    def __call__(self, hist: History) -> None:
        for ax, names in zip(self.axes, (self.left, self.right)):
            ax.clear()
            for name in names:
                if name in hist.metrics:
                    ax.plot(hist.eval_epoch, hist.metrics[name], marker="o", ms=3, label=name)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
        self.figure.tight_layout()
        self.n_updates += 1
        if self._display:
            try:
                from IPython.display import display

                if self._handle is None:
                    self._handle = display(self.figure, display_id=True)
                else:
                    self._handle.update(self.figure)
            except ImportError:  # pragma: no cover - IPython ships with jupyter
                pass


# ----------------------------------------------------------------- small data sets and representations
def lfw_split(size: int = 32, n_train: int = 140, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """scikit-image's ``lfw_subset`` (100 faces, 100 non-faces, 25x25 grey) ready for an ImageNet backbone.

    Grey is repeated into 3 channels and the images are resized to ``size``
    pixels; a seeded shuffle splits them into ``n_train`` training and the
    rest validation images.  Returns ``(x_train, y_train, x_val, y_val)``,
    labels 1 = face, 0 = not a face.
    """
    from .images import lfw_faces

    imgs, labels = lfw_faces()
    x = torch.from_numpy(imgs)[:, None].repeat(1, 3, 1, 1)
    x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    y = torch.from_numpy(labels)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    tr, va = order[:n_train], order[n_train:]
    return x[tr], y[tr], x[va], y[va]


SHAPE_CLASSES = ("circle", "square", "triangle")


def toy_shapes(n: int = 240, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A synthetic 3-class task: one circle, square or triangle per image, random size, place and colours.

    Returns images ``(n, 3, size, size)`` in [0, 1] and labels (indices into
    :data:`SHAPE_CLASSES`), balanced and the same for the same seed.
    """
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32) + 0.5,
                            torch.arange(size, dtype=torch.float32) + 0.5, indexing="ij")
    labels = torch.arange(n) % len(SHAPE_CLASSES)
    labels = labels[torch.randperm(n, generator=g)]
    images = torch.empty(n, 3, size, size)
    for i, lab in enumerate(labels.tolist()):
        r = size * (0.15 + 0.2 * float(torch.rand(1, generator=g)))
        cy, cx = (r + (size - 2 * r) * torch.rand(2, generator=g)).tolist()
        if lab == 0:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        elif lab == 1:
            mask = ((yy - cy).abs() <= r * 0.85) & ((xx - cx).abs() <= r * 0.85)
        else:  # an upright triangle: below the apex, inside two slanted edges
            top, bottom = cy - r, cy + r * 0.8
            half = (yy - top) / (bottom - top) * r
            mask = (yy >= top) & (yy <= bottom) & ((xx - cx).abs() <= half)
        bg, fg = torch.rand(3, 1, 1, generator=g), torch.rand(3, 1, 1, generator=g)
        fg = torch.where((fg - bg).abs() < 0.3, 1 - bg, fg)  # keep the shape visible
        noise = 0.08 * torch.randn(3, size, size, generator=g)
        images[i] = (torch.where(mask, fg, bg) + noise).clamp(0, 1)
    return images, labels


@torch.no_grad()
def embeddings(model: nn.Module, x: torch.Tensor, batch_size: int = 100) -> torch.Tensor:
    """What the head sees: the neck's pooled vector for each image, ``(N, D)`` (eval mode)."""
    was = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        outs = []
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            feats = model.extract(xb) if hasattr(model, "extract") else model(xb)
            v = next(iter(feats.values())) if isinstance(feats, Mapping) else feats
            outs.append(v.flatten(1).float().cpu())
    finally:
        model.train(was)
    return torch.cat(outs)


def pca_2d(*embs: torch.Tensor) -> list[torch.Tensor]:
    """Project embeddings to their 2 main directions (PCA fitted on all of them together)."""
    allx = torch.cat(embs)
    mean = allx.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(allx - mean, full_matrices=False)
    return [(e - mean) @ v[:2].T for e in embs]


def knn_accuracy(train_emb: torch.Tensor, train_y: torch.Tensor, val_emb: torch.Tensor, val_y: torch.Tensor,
                 k: int = 5) -> float:
    """How well an embedding separates classes with no training at all: k-nearest-neighbour vote (cosine)."""
    a = nn.functional.normalize(train_emb, dim=1)
    b = nn.functional.normalize(val_emb, dim=1)
    nearest = (b @ a.T).topk(k, dim=1).indices
    votes = train_y[nearest]
    pred = torch.mode(votes, dim=1).values
    return float((pred == val_y).float().mean())
