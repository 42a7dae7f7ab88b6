"""Representation probes: what do the features a head reads already know?

* :func:`embeddings` -- one pooled vector per image, what the head sees;
* :func:`pca_2d` -- those vectors on their two main directions, for a scatter plot;
* :func:`knn_accuracy` -- how well they separate classes with no training at all;
* :func:`standardize` -- every feature centred and scaled by the training split's statistics, so a probe
  sees directions, not sizes;
* :func:`recalibrate_batchnorm` -- BatchNorm's running statistics re-estimated on data (no gradient);
* :func:`linear_probe` -- a linear head trained on cached features: how much a trained head gets out of them;
* :func:`train_attention_probe` -- a linear probe (with an attention neck in front, or not) trained
  by :func:`~course_lib.training.fit` on frozen feature maps: lesson 05's attention experiment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..measure import evaluating
from .loop import fit


def embeddings(model: nn.Module, x: torch.Tensor, batch_size: int = 100) -> torch.Tensor:
    """What the head sees: the neck's pooled vector for each image, ``(N, D)`` (eval mode)."""
    outs = []
    with evaluating(model):
        device = next(model.parameters()).device
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            feats = model.extract(xb) if hasattr(model, "extract") else model(xb)
            v = next(iter(feats.values())) if isinstance(feats, Mapping) else feats
            outs.append(v.flatten(1).float().cpu())
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


def standardize(train: torch.Tensor, *others: torch.Tensor, rel_eps: float = 1e-6) -> list[torch.Tensor]:
    """Centre and scale every feature by the mean and std of ``train`` (the training split only).

    Returns ``[train, *others]`` standardised with the *same* statistics, so nothing of the validation
    split leaks into them.  A feature whose spread is below ``rel_eps`` times the largest spread (a dead
    ReLU, say) is only centred.  Scale-free: features of size 1e-8 and of size 1 come out alike.
    """
    mean = train.mean(0, keepdim=True)
    std = train.std(0, keepdim=True)
    std = torch.where(std > rel_eps * std.max(), std, torch.ones_like(std))
    return [(e - mean) / std for e in (train, *others)]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int = 100) -> nn.Module:
    """Re-estimate every BatchNorm's running mean and variance on images ``x``; no weight changes.

    Each BatchNorm layer is reset, then averages the statistics of all the batches it sees in train mode
    (``momentum=None``: a plain cumulative average); nothing else switches mode (dropout stays off) and no
    gradient is computed.  Afterwards every layer is back in the mode and momentum it had, so in eval mode
    the network normalises with statistics measured on *this* data instead of the initial 0 and 1.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model
    modes = [(m, m.training) for m in model.modules()]
    momenta = [m.momentum for m in bns]
    device = next(model.parameters()).device
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            model.extract(xb) if hasattr(model, "extract") else model(xb)
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        for m, training in modes:
            m.training = training
    return model


def linear_probe(train_emb: torch.Tensor, train_y: torch.Tensor, val_emb: torch.Tensor, val_y: torch.Tensor,
                 standardise: bool = False, steps: int = 100, lr: float = 1e-2, seed: int = 0) -> float:
    """Train a linear head on cached features with :func:`~course_lib.training.fit`; its validation accuracy.

    Full-batch Adam on ``(N, D)`` vectors, so it costs milliseconds: the backbone ran once, before.
    The head gets the features exactly as given, or with ``standardise=True`` after :func:`standardize`
    (statistics of the training split): a scale-free probe, which sees only the features' directions.
    """
    if standardise:
        train_emb, val_emb = standardize(train_emb, val_emb)
    torch.manual_seed(seed)
    head = nn.Linear(train_emb.shape[1], int(train_y.max()) + 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors this small train faster on one thread
    try:
        fit(head, [(train_emb, train_y)], loss_fn=nn.functional.cross_entropy, steps=steps,
            optimizer=torch.optim.Adam(head.parameters(), lr=lr), seed=None, device="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        return float((head(val_emb).argmax(1) == val_y).float().mean())


class AttentionProbe(nn.Module):
    """``neck`` (attention, or nothing) -> global average pooling -> one linear score per example.

    The neck is called as ``neck({"C": feats})`` and must return one map.
    """

    def __init__(self, neck: nn.Module | None, channels: int):
        super().__init__()
        self.neck = neck
        self.linear = nn.Linear(channels, 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if self.neck is not None:
            feats = next(iter(self.neck({"C": feats}).values()))
        return self.linear(feats.mean(dim=(2, 3)))[:, 0]


@dataclass
class ProbeResult:
    """A trained probe: ``neck`` (attention or identity), ``linear`` classifier, and its validation accuracy."""

    probe: AttentionProbe
    val_accuracy: float
    losses: list[float]

    @property
    def neck(self) -> nn.Module | None:
        return self.probe.neck

    @property
    def linear(self) -> nn.Linear:
        return self.probe.linear

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        """The probe's score for each example (positive = "red square present")."""
        return self.probe(feats)

    @torch.no_grad()
    def accuracy(self, feats: torch.Tensor, labels: torch.Tensor) -> float:
        """Fraction of examples classified right (e.g. again after switching a path of the neck off)."""
        return float(((self.logits(feats) > 0).float() == labels).float().mean())


def train_attention_probe(feats: torch.Tensor, labels: torch.Tensor, neck: nn.Module | None, steps: int = 120,
                          lr: float = 1e-2, n_train: int | None = None, seed: int = 0) -> ProbeResult:
    """Train ``neck`` (or nothing) + global average pooling + a linear layer on frozen features ``(N, C, H, W)``.

    Full-batch Adam for ``steps`` steps with :func:`~course_lib.training.fit`: the first
    ``n_train`` examples (default 3/4) train, the rest measure accuracy.
    """
    torch.manual_seed(seed)
    n_train = n_train or (3 * len(feats)) // 4
    probe = AttentionProbe(neck, feats.shape[1])
    opt = torch.optim.Adam(list(probe.linear.parameters()) + (list(neck.parameters()) if neck is not None else []),
                           lr=lr)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors this small train faster on one thread, and fight no other process
    try:
        hist = fit(probe, [(feats[:n_train], labels[:n_train])], loss_fn=nn.functional.binary_cross_entropy_with_logits,
                   steps=steps, optimizer=opt, seed=None, device="cpu", progress=False, eval_every=steps)
    finally:
        torch.set_num_threads(threads)
    result = ProbeResult(probe, float("nan"), hist.loss)
    result.val_accuracy = result.accuracy(feats[n_train:], labels[n_train:])
    return result
