"""Lesson 03 exercises: pretrained backbones and fine-tuning."""

from __future__ import annotations

from ..exercises import Exercise, register

register(Exercise(
    id="03.trainable",
    question="MobileNetV2's backbone is frozen and a new linear head maps its pooled 1280 features to 2 classes "
             "(face / not a face). How many parameters does the optimizer train?",
    answer=1280 * 2 + 2,
    hints=["only the head learns: a Linear(1280, 2) layer", "weights 1280 x 2, plus one bias per class"],
    explanation="2,562 parameters out of about 2.2 million: that is why the frozen probe trains in a second.",
))
register(Exercise(
    id="03.lower_lr",
    question="Fine-tuning end to end: which part gets the *smaller* learning rate, 'backbone' or 'head'?",
    answer="backbone",
    hints=["which part already knows something useful?", "large steps would wash out the pretrained filters"],
    explanation="The backbone: its ImageNet filters are already good, so they are nudged (e.g. 1e-4) while the "
                "new, random head learns fast (e.g. 1e-3).",
))
def _steps(n_images: int, batch_size: int, epochs: int, drop_last: bool = False) -> int:
    """Reference answer: one optimizer step per batch, every batch of every epoch."""
    per_epoch = n_images // batch_size if drop_last else -(-n_images // batch_size)
    return epochs * per_epoch


#: (images, batch size, epochs, drop_last): the cases the checker trains; two do not divide evenly
_STEP_CASES = [(140, 28, 4, False), (100, 32, 3, False), (100, 32, 3, True), (10, 4, 2, False), (30, 7, 1, True)]


def _same_steps_as_fit(fn, _reference) -> bool:
    """Run the real fit() on a tiny linear model for each case and compare its step count with ``fn``'s."""
    import torch
    import torch.nn.functional as F

    from ...training import fit, tensor_batches

    for n, batch, epochs, drop_last in _STEP_CASES:
        x, y = torch.rand(n, 4), torch.randint(0, 2, (n,))
        hist = fit(torch.nn.Linear(4, 2), tensor_batches(x, y, batch_size=batch, drop_last=drop_last),
                   loss_fn=F.cross_entropy, epochs=epochs, device="cpu", progress=False)
        if fn(n, batch, epochs, drop_last) != hist.steps_done:
            return False
    return True


register(Exercise(
    id="03.count_steps",
    question="Write `steps(n_images, batch_size, epochs, drop_last=False)`: how many optimizer steps does fit() "
             "take on `tensor_batches(x, y, batch_size=batch_size, drop_last=drop_last)` for `epochs` epochs? "
             "The checker runs the real fit() on a tiny model for five cases, some where the batch size does not "
             "divide the number of images, and compares. Pass the function itself: `answer = steps`.",
    answer=_steps,
    compare=_same_steps_as_fit,
    hints=["one optimizer step per batch, and fit() runs every batch of every epoch",
           "140 / 28 = 5 batches, but 100 images in batches of 32? The last, smaller batch is a batch too",
           "without drop_last an epoch has ceil(n / batch) batches, -(-n // batch) in Python; with it, n // batch"],
    explanation="steps = epochs x ceil(n / batch), or epochs x (n // batch) when the incomplete last batch is "
                "dropped. The lesson's 140 images in batches of 28 for 4 epochs make 20 steps ('equal budget' "
                "means equal steps); the shipped detectors' recipe drops the last batch, so every step sees 32 "
                "images.",
))
register(Exercise(
    id="03.grey_to_rgb",
    question="lfw_subset images are 25x25 grey (1 channel). A pretrained backbone's first conv expects how many "
             "input channels?",
    answer=3,
    hints=["look at first_conv(backbone).weight.shape", "ImageNet photos are RGB"],
    explanation="3: the grey image is repeated into R, G and B (x.repeat(1, 3, 1, 1)), and upscaled so that "
                "the deeper stages still have a grid to look at.",
))


def _freeze_backbone(model):
    """Reference answer: no gradient for the backbone, and its BatchNorm layers in eval mode."""
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    model.backbone.eval()
    return model


def _only_the_head_learns(fn, _reference) -> bool:
    """Call the learner's function on a fresh model, take one training step, see what moved."""
    import torch

    from ...model import build_model

    torch.manual_seed(0)
    model = build_model({"backbone": {"name": "mobilenet_v2"}, "neck": {"name": "gap"},
                         "head": {"name": "classification", "num_classes": 2}})
    model.train()
    fn(model)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = [p.detach().clone() for p in model.head.parameters()]
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        return False
    opt = torch.optim.SGD(trainable, lr=0.1)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    backbone_still = all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())
    head_moved = any(not torch.equal(a, b) for a, b in zip(head_before, model.head.parameters()))
    return backbone_still and head_moved


register(Exercise(
    id="03.freeze_backbone",
    question="Write a function `f(model)` that prepares a fresh backbone -> neck -> head model so that a training "
             "step changes only the head: the backbone's weights AND its BatchNorm running statistics stay as they "
             "were. The checker calls your function on a new MobileNetV2 model (in train mode), takes one SGD step "
             "and looks at what moved. Pass the function itself: `answer = f`.",
    answer=_freeze_backbone,
    compare=_only_the_head_learns,
    hints=["start with `for p in model.backbone.parameters(): p.requires_grad_(False)`",
           "BatchNorm updates its running mean and variance on every forward pass in train mode, gradient or not: "
           "put the backbone in eval mode (`model.backbone.eval()`)",
           "the head must still learn: leave its parameters' requires_grad alone"],
    explanation="No gradient for the backbone and its BatchNorm layers in eval mode: `course_lib.training.freeze` "
                "does the first, and fit() the second for every fully frozen part.",
))
