"""The stage contract, build_model, trace, backbones and the pretrained classifier."""

from __future__ import annotations

import pytest
import torch
import torchvision

import course_lib as cl
from course_lib.images import imagenet_view


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18", "resnet50", "vgg11"])
def test_torchvision_backbones_give_named_maps_with_their_strides(name):
    bb = cl.backbones.build(name, levels=("C1", "C2", "C3", "C4", "C5")).eval()
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        out = bb(x)
    assert list(out) == ["C1", "C2", "C3", "C4", "C5"] == list(bb.out_specs)
    for level, spec in bb.out_specs.items():
        assert spec.stride == 2 ** int(level[1])
        assert out[level].shape == (2, spec.channels, 96 // spec.stride, 128 // spec.stride)


def test_default_levels_and_channels():
    widths = {
        "mobilenet_v2": [24, 32, 96, 1280],
        "resnet18": [64, 128, 256, 512],
        "resnet50": [256, 512, 1024, 2048],
        "vgg11": [128, 256, 512, 512],
    }
    for name, chans in widths.items():
        specs = cl.backbones.build(name).out_specs
        assert list(specs) == ["C2", "C3", "C4", "C5"]
        assert [s.channels for s in specs.values()] == chans


def test_asking_for_fewer_levels_drops_the_later_stages():
    bb = cl.backbones.build("resnet18", levels=("C2", "C3"))
    assert list(bb.stages) == ["C1", "C2", "C3"]
    assert list(bb(torch.rand(1, 3, 64, 64))) == ["C2", "C3"]


def test_pretrained_mobilenet_equals_torchvision(cat, classifier):
    ref = torchvision.models.mobilenet_v2()
    ref.load_state_dict(cl.weights.load_state_dict("mobilenet_v2"))
    ref.eval()
    x = imagenet_view(cat)[None]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(classifier(x), ref((x - mean) / std), atol=1e-4)
    assert sum(p.numel() for p in classifier.parameters()) == 3_504_872


def test_the_cat_is_an_egyptian_cat(cat, classifier):
    with torch.no_grad():
        top = classifier.head.decode(classifier(imagenet_view(cat)[None]), k=5)[0]
    assert top[0].name == "Egyptian cat"
    assert top[0].prob == pytest.approx(0.72, abs=0.03)
    assert [c.name for c in top[:3]] == ["Egyptian cat", "tiger cat", "tabby"]
    assert sum(c.prob for c in top) <= 1.0 + 1e-6


def test_trace_keeps_every_stage_and_restores_training_mode(classifier, cat):
    classifier.train()
    trace = classifier.trace(imagenet_view(cat))
    assert classifier.training  # restored
    classifier.eval()
    parts = [p for p, _, _ in trace.stages()]
    assert parts == ["input", "backbone", "backbone", "backbone", "backbone", "neck", "head"]
    assert trace.neck["pooled"].shape == (1, 1280)
    assert trace.head.shape == (1, 1000)
    assert not trace.head.requires_grad
    # the trace is the same computation as a forward pass in eval mode
    with torch.no_grad():
        assert torch.allclose(trace.head, classifier(imagenet_view(cat)[None]))


def test_build_model_names_both_sides_when_parts_do_not_fit():
    with pytest.raises(cl.ContractError) as err:
        cl.build_model({"backbone": {"name": "vgg11"}, "neck": {"name": "identity", "in_keys": ["C6"]},
                        "head": {"name": "classification"}})
    msg = str(err.value)
    assert "neck 'identity' expects C6" in msg and "backbone 'vgg11' gives" in msg
    assert "C2 (128ch /4)" in msg and "C5 (512ch /32)" in msg


def test_head_misfit_names_the_neck_and_backbone():
    with pytest.raises(cl.ContractError) as err:
        cl.build_model({"backbone": "resnet18", "neck": "gap",
                        "head": {"name": "classification", "in_keys": "C5"}})
    assert "head 'classification' expects C5" in str(err.value)
    assert "neck 'gap' (on backbone 'resnet18') gives pooled (512ch global)" in str(err.value)


def test_unknown_names_suggest_the_nearest():
    with pytest.raises(KeyError, match="Did you mean 'resnet18'"):
        cl.backbones.build("resnet81")
    with pytest.raises(KeyError, match="Did you mean 'gap'"):
        cl.necks.build("gapp", {})


def test_models_reject_wrong_inputs_with_advice(classifier):
    with pytest.raises(ValueError, match=r"add the batch dimension"):
        classifier(torch.rand(3, 64, 64))
    with pytest.raises(TypeError, match="float"):
        classifier(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match="permute"):
        classifier(torch.rand(1, 64, 64, 3))
    with pytest.raises(TypeError, match="load_image"):
        classifier([[0.0]])


def test_new_head_on_any_backbone_trains_one_step():
    torch.manual_seed(0)
    model = cl.build_model({"backbone": "resnet18", "neck": "gap", "head": {"name": "classification",
                                                                               "num_classes": 3}})
    x, y = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 1])
    loss = model.head.loss(model(x), y)
    loss.backward()
    assert loss.item() > 0
    assert model.head.fc.weight.grad is not None and model.backbone.stages["C1"][0].weight.grad is not None


def test_classification_head_on_identity_neck_pools_itself():
    model = cl.build_model({"backbone": "resnet18", "head": {"name": "classification", "num_classes": 5}})
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 5)
    assert model.head.class_names[:2] == ["class 0", "class 1"]


def test_vgg_has_no_linear_imagenet_head():
    with pytest.raises(ValueError, match="3-layer MLP"):
        cl.build_model({"backbone": "vgg11", "neck": "gap", "head": {"name": "classification", "pretrained": True}})


def test_summary_counts_every_parameter(classifier):
    rows = classifier.summary()
    assert [r["part"] for r in rows] == ["backbone", "neck", "head"]
    assert sum(r["params"] for r in rows) == sum(p.numel() for p in classifier.parameters())
    assert rows[1]["params"] == 0  # pooling has nothing to learn


def test_trace_shows_the_steps_a_neck_records():
    model = cl.build_model({"backbone": "resnet18", "neck": {"name": "fpn", "out_channels": 32},
                            "head": {"name": "classification", "num_classes": 2}})
    trace = model.trace(torch.rand(3, 64, 64))
    steps = trace.intermediates["neck"]
    assert "P3 lateral" in steps and "P3 top-down" in steps
    assert steps["P3 lateral"].shape == trace.neck["P3"].shape


def test_the_readme_misfit_message_is_the_real_one():
    from pathlib import Path

    with pytest.raises(cl.ContractError) as err:
        cl.build_model({"backbone": {"name": "resnet18", "levels": ["C4", "C5"]}, "neck": "fpn",
                        "head": {"name": "detection"}})
    assert f"`{err.value}`" in (Path(__file__).resolve().parents[1] / "README.md").read_text()
