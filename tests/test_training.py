"""fit(): the course's one training loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import course_lib as cl
from course_lib.measure import count_trainable
from course_lib.training import (
    History,
    LiveCurves,
    auto_device,
    classification_metrics,
    fit,
    freeze,
    param_groups,
    tensor_batches,
)


def blobs(n: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian blobs in 2-D: a problem a linear model solves."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.7 + (y[:, None] * 2 - 1) * torch.tensor([1.5, -1.0])
    return x, y


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))


def test_fit_lowers_the_loss_and_learns():
    x, y = blobs()
    torch.manual_seed(0)
    model = mlp()
    val = classification_metrics(tensor_batches(x, y, 64, shuffle=False))
    before = val(model)
    hist = fit(model, tensor_batches(x, y, 16), loss_fn=F.cross_entropy, epochs=5, lr=1e-2, val_fn=val,
               device="cpu", progress=False)
    assert isinstance(hist, History)
    assert hist.steps_done == 5 * 8 and hist.step == list(range(1, 41))
    assert hist.eval_epoch == [1, 2, 3, 4, 5]
    assert hist.metrics["train_loss"][-1] < 0.5 * hist.metrics["train_loss"][0]
    assert hist.final("val_loss") < 0.5 * before["val_loss"]
    assert hist.final("val_acc") > 0.9
    assert hist.stopped_by == "epochs"
    assert not model.training  # handed back in eval mode
    table = hist.as_table()
    assert "val_acc" in table and len(table.splitlines()) == 6


def test_fit_is_deterministic_with_a_seed():
    x, y = blobs()
    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # the same init ...
        model = mlp()
        torch.manual_seed(999)  # ... but different global state: fit's seed must reset it
        hist = fit(model, [(x[:64], y[:64]), (x[64:], y[64:])], loss_fn=F.cross_entropy, steps=12, progress=False,
                   seed=7, device="cpu")
        runs.append(hist.loss)
    assert runs[0] == runs[1]


def test_steps_budget_and_eval_every():
    x, y = blobs()
    seen = []
    hist = fit(mlp(), tensor_batches(x, y, 16), loss_fn=F.cross_entropy, steps=10, eval_every=4,
               progress=False, device="cpu", callback=lambda h: seen.append(h.steps_done))
    assert hist.steps_done == 10 and hist.stopped_by == "steps"
    assert hist.eval_step == [4, 8, 10]
    assert seen == [4, 8, 10]  # the callback sees the history after each evaluation


def test_time_budget_stops():
    x, y = blobs()
    hist = fit(mlp(), tensor_batches(x, y, 8), loss_fn=F.cross_entropy, time_budget_s=0.05, progress=False,
               device="cpu")
    assert hist.stopped_by == "time" and hist.steps_done >= 1


def test_a_cpu_clock_budget_is_not_eaten_by_waiting():
    """Time spent waiting (here: sleeping, as when another program holds the core) counts on the wall clock
    only; a budget on the CPU clock lets the run take every step its own work allows."""
    import time

    x, y = blobs()
    nap = lambda h: time.sleep(0.2)  # noqa: E731 -- 200 ms of waiting, no CPU, after every step
    threads = torch.get_num_threads()
    torch.set_num_threads(1)         # the CPU clock counts every thread's CPU time: one thread, as the benchmarks
    try:
        runs = {clock: fit(mlp(), tensor_batches(x, y, 8), loss_fn=F.cross_entropy, steps=6, time_budget_s=0.5,
                           eval_every=1, callback=nap, progress=False, device="cpu", clock=clock)
                for clock in ("wall", "cpu")}
    finally:
        torch.set_num_threads(threads)
    assert runs["wall"].stopped_by == "time" and runs["wall"].steps_done < 6
    assert runs["cpu"].stopped_by == "steps" and runs["cpu"].steps_done == 6
    assert runs["cpu"].seconds > runs["cpu"].cpu_seconds          # it waited longer than it worked
    with pytest.raises(ValueError, match="clock must be one of wall, cpu"):
        fit(mlp(), tensor_batches(x, y, 8), loss_fn=F.cross_entropy, steps=1, progress=False, clock="gpu")


def test_default_loss_comes_from_the_head_and_dict_losses_record_parts():
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(x)

        def loss(self, out, y):
            ce = F.cross_entropy(out, y)
            reg = 1e-3 * out.pow(2).mean()
            return {"loss": ce + reg, "cls": ce, "reg": reg}

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = Head()

        def forward(self, x):
            return self.head(x)

    x, y = blobs()
    hist = fit(Model(), tensor_batches(x, y, 32), epochs=3, lr=5e-2, progress=False, device="cpu")
    assert set(hist.parts) == {"cls", "reg"} and len(hist.parts["cls"]) == hist.steps_done
    assert hist.loss[-1] < hist.loss[0]


def test_progress_bar_and_live_curves_run(capsys):
    x, y = blobs(64)
    curves = LiveCurves(display=False)
    fit(mlp(), tensor_batches(x, y, 16), loss_fn=F.cross_entropy, epochs=2, progress=True, device="cpu",
        val_fn=classification_metrics([(x, y)]), callback=curves)
    assert curves.n_updates == 2
    assert {ln.get_label() for ln in curves.axes[0].lines} == {"train_loss", "val_loss"}
    assert "training" in capsys.readouterr().err  # tqdm writes to stderr


def test_accuracy_baselines_are_the_one_class_answers():
    y = torch.tensor([0] * 32 + [1] * 28)
    base = cl.training.accuracy_baselines(y, ["non-face", "face"])
    assert base == {"majority class (always 'non-face')": 32 / 60, "minority class (always 'face')": 28 / 60}
    assert list(cl.training.accuracy_baselines([2, 2, 2])) == ["majority class (always '2')"]  # one class: one line


def test_live_curves_compare_runs_on_shared_axes_with_whole_epochs():
    x, y = blobs(64)
    base = cl.training.accuracy_baselines(y)
    curves = LiveCurves(["val_loss"], ["val_acc"], display=False, baselines=base)
    for arm, lr in (("slow", 1e-3), ("fast", 5e-2)):
        fit(mlp(), tensor_batches(x, y, 16), loss_fn=F.cross_entropy, epochs=3, lr=lr, progress=False,
            device="cpu", val_fn=classification_metrics([(x, y)]), callback=curves.run(arm))
    loss_ax, acc_ax = curves.axes
    assert curves.n_updates == 6 and list(curves.runs) == ["slow", "fast"]
    assert [ln.get_label() for ln in loss_ax.lines] == ["slow", "fast"]        # both arms on one axes
    assert tuple(loss_ax.lines[0].get_color()) != tuple(loss_ax.lines[1].get_color())  # one colour per arm
    assert acc_ax.get_ylim() == (0, 1.02)                                      # accuracy on its whole range
    assert all(float(t).is_integer() for t in loss_ax.get_xticks()) and loss_ax.get_xlabel() == "epoch"
    labels = [t.get_text() for t in acc_ax.texts]
    assert any(t.startswith("majority class") for t in labels) and any(t.startswith("minority class") for t in labels)
    static = cl.training.compare_curves(curves.runs, baselines=base)         # the same picture from histories
    assert [ln.get_label() for ln in static.axes[0].lines] == ["slow", "fast"]


def test_live_curves_say_in_words_what_they_draw():
    x, y = blobs(64)
    base = cl.training.accuracy_baselines(y)
    curves = LiveCurves(["val_loss"], ["val_acc"], display=False, baselines=base, title="two arms")
    hists = {arm: fit(mlp(), tensor_batches(x, y, 16), loss_fn=F.cross_entropy, epochs=2, lr=lr, progress=False,
                      device="cpu", val_fn=classification_metrics([(x, y)]), callback=curves.run(arm))
             for arm, lr in (("slow", 1e-3), ("fast", 5e-2))}
    alt = cl.render.alt_text(curves.figure)
    assert alt.startswith("two arms. Line charts per epoch, one line per run (slow, fast): left val_loss, right val_acc")
    assert all(f"{k} {v:.3f}" in alt for k, v in base.items())                 # the baselines, as drawn
    for arm, hist in hists.items():                                            # every run's last values
        assert f"{arm} (epoch 2) val_loss {hist.final('val_loss'):.3g}, val_acc {hist.final('val_acc'):.3g}" in alt
    assert cl.render.alt_text(cl.training.compare_curves(hists, baselines=base, title="two arms")) == alt
    cl.render.describe(curves.figure, "my own words")                          # a caller's words are kept
    curves.update(hists["fast"], "fast")
    assert cl.render.alt_text(curves.figure) == "my own words"
    single = LiveCurves(["train_loss"], [], display=False)
    single(hists["slow"])
    assert cl.render.alt_text(single.figure) == (f"Line chart per epoch: train_loss. At the end (epoch 2): train_loss "
                                                 f"{hists['slow'].final('train_loss'):.3g}.")


def test_live_curves_use_steps_when_evaluations_fall_between_epochs():
    x, y = blobs(64)
    curves = LiveCurves(["train_loss"], [], display=False)
    fit(mlp(), tensor_batches(x, y, 16), loss_fn=F.cross_entropy, steps=6, eval_every=3, progress=False,
        device="cpu", callback=curves)
    assert curves.axes[0].get_xlabel() == "optimizer step"
    assert [list(ln.get_xdata()) for ln in curves.axes[0].lines] == [[3, 6]]


def test_frozen_backbone_stays_frozen_batchnorm_included():
    torch.manual_seed(0)
    model = cl.build_model({"backbone": {"name": "resnet18", "levels": ["C2"]}, "neck": {"name": "gap"},
                            "head": {"name": "classification", "num_classes": 2}})
    freeze(model.backbone)
    assert count_trainable(model) == 64 * 2 + 2
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    x = torch.rand(8, 3, 32, 32)
    y = torch.tensor([0, 1] * 4)
    fit(model, [(x, y)], loss_fn=F.cross_entropy, steps=3, progress=False, device="cpu")
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights AND BN running stats


def test_param_groups_give_each_part_its_learning_rate():
    model = cl.build_model({"backbone": {"name": "resnet18", "levels": ["C2"]}, "neck": {"name": "gap"},
                            "head": {"name": "classification", "num_classes": 2}})
    groups = param_groups(model, {"backbone": 1e-4, "head": 1e-2})
    assert [g["lr"] for g in groups] == [1e-4, 1e-2]
    n = sum(p.numel() for g in groups for p in g["params"])
    assert n == count_trainable(model)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])
    hist = fit(model, [(x, y)], loss_fn=F.cross_entropy, steps=1, optimizer=groups, progress=False, device="cpu")
    assert hist.steps_done == 1
    with pytest.raises(ValueError, match="default_lr"):
        param_groups(model, {"head": 1e-2})


def test_auto_device_and_bad_inputs():
    dev = auto_device()
    assert dev.type in {"cuda", "mps", "cpu"}
    if not torch.cuda.is_available():
        assert dev.type in {"mps", "cpu"}
        with pytest.raises(ValueError, match="CUDA"):
            auto_device("cuda")
    assert auto_device("cpu") == torch.device("cpu")
    x, y = blobs(16)
    with pytest.raises(ValueError, match="budget"):
        fit(mlp(), [(x, y)], loss_fn=F.cross_entropy)
    with pytest.raises(ValueError, match="loss_fn"):
        fit(mlp(), [(x, y)], steps=1, progress=False)
    with pytest.raises(ValueError, match="pair"):
        fit(mlp(), [x], loss_fn=F.cross_entropy, steps=1, progress=False)
    with pytest.raises(ValueError, match="one-shot"):
        fit(mlp(), iter([(x, y)]), loss_fn=F.cross_entropy, epochs=2, progress=False)
    with pytest.raises(ValueError, match="frozen"):
        fit(freeze(mlp()), [(x, y)], loss_fn=F.cross_entropy, steps=1, progress=False)
    with pytest.raises(FloatingPointError, match="learning rate"):
        fit(mlp(), [(x, y)], loss_fn=lambda o, t: o.sum() * float("nan"), steps=1, progress=False)
    with pytest.raises(ValueError, match="single number"):
        fit(mlp(), [(x, y)], loss_fn=lambda o, t: F.cross_entropy(o, t, reduction="none"), steps=1, progress=False)


def test_one_shot_iterator_stops_when_it_runs_dry():
    x, y = blobs(32)
    hist = fit(mlp(), iter([(x[:16], y[:16]), (x[16:], y[16:])]), loss_fn=F.cross_entropy, steps=100,
               progress=False, device="cpu")
    assert hist.steps_done == 2 and hist.stopped_by == "data"


def test_tensor_batches_cut_uint8_images_and_list_targets():
    images = torch.arange(10 * 3 * 2 * 2, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(10, 3, 2, 2)
    targets = [{"id": torch.tensor(i)} for i in range(10)]
    data = tensor_batches(images, targets, batch_size=4, seed=1, drop_last=True, channels_last=True)
    first = list(data())
    assert data.num_batches == 2 and [len(y) for _, y in first] == [4, 4]  # the last 2 images are dropped
    x, y = first[0]
    assert x.dtype == torch.float32 and float(x.max()) <= 1.0
    assert torch.equal(x * 255, images[[int(t["id"]) for t in y]].float())  # targets follow their images
    assert x.is_contiguous(memory_format=torch.channels_last)
    again = list(data())
    assert [int(t["id"]) for t in again[0][1]] != [int(t["id"]) for t in y]  # a new order each epoch
    kept = tensor_batches(images, targets, batch_size=4, shuffle=False)
    assert kept.num_batches == 3 and [len(y) for _, y in kept()] == [4, 4, 2]
    with pytest.raises(ValueError, match="length"):
        tensor_batches(images, targets[:3])


def test_embeddings_knn_and_pca():
    from course_lib.training import embeddings, knn_accuracy, pca_2d

    model = cl.build_model({"backbone": {"name": "yolo_csp", "levels": ["C3"]}, "neck": {"name": "gap"},
                            "head": {"name": "classification", "num_classes": 2}})
    e = embeddings(model, torch.rand(7, 3, 32, 32), batch_size=3)
    assert e.shape == (7, 64)
    a = torch.cat([torch.randn(20, 5) + 3, torch.randn(20, 5) - 3])
    lab = torch.tensor([0] * 20 + [1] * 20)
    assert knn_accuracy(a, lab, a + 0.01, lab, k=3) == 1.0
    (p,) = pca_2d(a)
    assert p.shape == (40, 2) and abs(float(p.mean())) < 1e-4


def test_freeze_batchnorm_keeps_statistics_but_convs_learn():
    from course_lib.training import freeze_batchnorm

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    freeze_batchnorm(net)
    stats = net[1].running_mean.clone()
    w = net[0].weight.clone()
    x, y = torch.rand(8, 3, 8, 8), torch.tensor([0, 1] * 4)
    fit(net, [(x, y)], loss_fn=F.cross_entropy, steps=3, progress=False, device="cpu", lr=1e-2)
    assert torch.equal(net[1].running_mean, stats) and not torch.equal(net[0].weight, w)


def test_standardize_uses_the_training_split_and_ignores_scale():
    from course_lib.training import standardize

    g = torch.Generator().manual_seed(0)
    tr, va = torch.randn(50, 4, generator=g) * 3 + 2, torch.randn(10, 4, generator=g)
    tr[:, 3] = 5.0                                               # a dead feature: no spread at all
    s_tr, s_va = standardize(tr, va)
    assert torch.allclose(s_tr[:, :3].mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(s_tr[:, :3].std(0), torch.ones(3), atol=1e-5)
    assert torch.equal(s_tr[:, 3], torch.zeros(50))               # only centred, no division by ~0
    assert torch.allclose(s_va[:, 0], (va[:, 0] - tr[:, 0].mean()) / tr[:, 0].std())   # train's statistics
    tiny_tr, tiny_va = standardize(tr * 1e-8, va * 1e-8)          # the random eye's scale
    assert torch.allclose(tiny_tr, s_tr, atol=1e-3) and torch.allclose(tiny_va[:, :3], s_va[:, :3], atol=1e-3)


def test_recalibrate_batchnorm_measures_the_data_and_restores_modes():
    from course_lib.training import recalibrate_batchnorm

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten())
    net[1].momentum = 0.3
    net.train()
    net[2].eval()                                                  # a mixed-mode model stays mixed
    w = net[0].weight.clone()
    x = torch.rand(30, 3, 5, 5) * 4 + 1
    recalibrate_batchnorm(net, x, batch_size=6)                    # 5 batches, averaged with equal weight
    with torch.no_grad():
        a = net[0](x)
    assert torch.allclose(net[1].running_mean, a.mean(dim=(0, 2, 3)), atol=1e-4)   # all 30 images, averaged
    assert torch.allclose(net[1].running_var, a.var(dim=(0, 2, 3)), rtol=0.05)
    assert torch.equal(net[0].weight, w) and net[1].momentum == 0.3
    assert net.training and net[1].training and not net[2].training
    assert all(p.grad is None for p in net.parameters())


def test_linear_probe_fails_on_tiny_features_unless_standardised():
    from course_lib.training import linear_probe

    x, y = blobs(200, seed=1)
    xv, yv = blobs(100, seed=2)
    assert linear_probe(x, y, xv, yv) >= 0.9
    assert linear_probe(x * 1e-8, y, xv * 1e-8, yv) <= 0.7          # the head has nothing to grip
    assert linear_probe(x * 1e-8, y, xv * 1e-8, yv, standardise=True) >= 0.9


def test_the_freeze_exercise_accepts_a_real_freeze_only():
    ex = cl.exercises.get("03.freeze_backbone")

    def grads_only(model):                                         # forgets BatchNorm's running statistics
        freeze(model.backbone)

    def everything_frozen(model):
        freeze(model)
        model.eval()

    assert ex.is_correct(ex.solution())
    assert not ex.is_correct(grads_only) and not ex.is_correct(everything_frozen)
    assert not ex.is_correct(lambda model: None) and not ex.is_correct(3)
