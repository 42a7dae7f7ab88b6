"""Detection and segmentation heads: shapes per level, assignment, loss, decode."""

from __future__ import annotations

import math

import pytest
import torch

import course_lib as cl
from course_lib.boxes import box_iou, decode_distances, encode_distances
from course_lib.contract import ContractError, FeatureSpec
from course_lib.data import ShapesWorld

SPECS = {"P3": FeatureSpec(32, 8), "P4": FeatureSpec(32, 16), "P5": FeatureSpec(32, 32)}


def feats(b: int = 2, size: int = 128, c: int = 32) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: torch.randn(b, c, size // s.stride, size // s.stride) for k, s in SPECS.items()}


@pytest.mark.parametrize("reg_bins", [0, 8])
def test_detection_output_shapes_per_level(reg_bins):
    head = cl.heads.build("detection", SPECS, num_classes=3, width=16, depth=1, reg_bins=reg_bins)
    out = head(feats())
    box_ch = 4 * reg_bins if reg_bins else 4
    for lv, s in SPECS.items():
        n = 128 // s.stride
        assert out[f"cls.{lv}"].shape == (2, 3, n, n)
        assert out[f"box.{lv}"].shape == (2, box_ch, n, n)
    flat = head.flatten(out)
    assert flat["cls"].shape == (2, 16 * 16 + 8 * 8 + 4 * 4, 3) and flat["points"].shape == (336, 2)
    d = head.distances(flat["box_raw"])
    assert d.shape == (2, 336, 4) and bool((d >= 0).all())
    if reg_bins:
        assert float(d.max().detach()) <= reg_bins - 1  # an expectation over bins 0 .. reg_bins - 1


def test_decoupled_and_coupled_branches():
    dec = cl.heads.build("detection", SPECS, width=16, depth=2)
    cpl = cl.heads.build("detection", SPECS, width=16, depth=2, decoupled=False)
    n_dec = sum(p.numel() for p in dec.parameters())
    n_cpl = sum(p.numel() for p in cpl.parameters())
    assert n_dec > n_cpl  # two branches of 3x3 convs instead of one
    assert hasattr(dec.heads["P3"], "cls_branch") and hasattr(cpl.heads["P3"], "shared")
    assert cpl(feats())["cls.P4"].shape == dec(feats())["cls.P4"].shape


def test_assignment_respects_scale_ranges_and_centres():
    head = cl.heads.build("detection", SPECS, width=16, depth=1)
    out = head(feats(1))
    flat = head.flatten(out)
    small = [40.0, 40, 52, 52]  # size 12 -> P3 (sizes below 24)
    large = [60.0, 20, 116, 76]  # size 56 -> P5 (48 and above)
    targets = [{"boxes": torch.tensor([small, large]), "labels": torch.tensor([0, 2])}]
    a = head.assign(flat["points"], flat["strides"], flat["level"], targets)
    pos = a["pos"][0]
    lv_small = flat["level"][pos & (a["gt_index"][0] == 0)]
    lv_large = flat["level"][pos & (a["gt_index"][0] == 1)]
    assert len(lv_small) > 0 and set(lv_small.tolist()) == {0}
    assert len(lv_large) > 0 and set(lv_large.tolist()) == {2}
    assert set(a["labels"][0][pos].tolist()) == {0, 2}
    # every positive point lies inside its box (the border counts) and near its centre (1.5 strides)
    pts, boxes = flat["points"][pos], a["boxes"][0][pos]
    assert bool(((pts >= boxes[:, :2]) & (pts <= boxes[:, 2:])).all())
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert bool(((pts - centres).abs() < 1.5 * flat["strides"][pos][:, None]).all())


def test_every_object_gets_a_positive_even_tiny_ones():
    head = cl.heads.build("detection", SPECS, width=16, depth=1)
    flat = head.flatten(head(feats(1)))
    tiny = [[3.0, 3, 9, 9], [100, 30, 107, 36], [60, 61, 100, 62]]  # the last is 40 x 1 px between grid rows
    a = head.assign(flat["points"], flat["strides"], flat["level"],
                    [{"boxes": torch.tensor(tiny), "labels": torch.tensor([1, 1, 0])}])
    assert set(a["gt_index"][0][a["pos"][0]].tolist()) == {0, 1}  # the thin line holds no cell centre
    # a box with a cell centre on its border still gets it: point (100, 36) for the second box
    on_border = a["pos"][0] & (a["gt_index"][0] == 1)
    assert flat["points"][on_border].tolist() == [[100.0, 36.0]]


def test_locate_turns_a_flat_index_into_level_row_col():
    head = cl.heads.build("detection", SPECS, width=16, depth=1)
    out = head(feats(1))
    flat = head.flatten(out)
    assert head.locate(out, 0) == ("P3", 0, 0) and head.locate(out, 255) == ("P3", 15, 15)
    assert head.locate(out, 256 + 8 * 2 + 3) == ("P4", 2, 3) and head.locate(out, 335) == ("P5", 3, 3)
    for i in torch.randint(0, 336, (40,), generator=torch.Generator().manual_seed(1)).tolist():
        lv, row, col = head.locate(out, i)
        assert head.levels[int(flat["level"][i])] == lv
        cell = head.cell(out, lv, row, col)
        assert torch.equal(cell["point"], flat["points"][i])  # the same cell, seen both ways
    with pytest.raises(IndexError, match="336 points"):
        head.locate(out, 336)


def test_positive_cells_per_level_follow_the_size_bands():
    head = cl.heads.build("detection", SPECS, width=16, depth=1)
    out = head(feats(1))
    small, middle, large = [40.0, 40, 52, 52], [10.0, 70, 42, 102], [60.0, 20, 116, 76]  # sizes 12, 32, 56
    target = {"boxes": torch.tensor([small, middle, large]), "labels": torch.tensor([0, 1, 2])}
    assert head.size_level(target["boxes"]).tolist() == [0, 1, 2]
    assert head.size_level(torch.tensor([[0.0, 0, 24, 24], [0.0, 0, 23.9, 24]])).tolist() == [1, 0]  # band edges
    cells = head.positive_cells(out, target)
    assert set(cells) == {"P3", "P4", "P5"}
    for lv, g in zip(head.levels, range(3)):
        assert cells[lv].shape[1] == 3 and set(cells[lv][:, 0].tolist()) == {g}
        s = head.strides[head.levels.index(lv)]
        box = target["boxes"][g]
        centres = (cells[lv][:, 1:].flip(1).float() + 0.5) * s  # (row, col) -> (x, y)
        assert bool(((centres >= box[:2]) & (centres <= box[2:])).all())
    # the same answer as assign() on the flat list
    flat = head.flatten(out)
    a = head.assign(flat["points"], flat["strides"], flat["level"], [target])
    assert sum(len(c) for c in cells.values()) == int(a["pos"].sum())
    # ShapesWorld: every object gets positives, all on exactly the level its size selects
    world = ShapesWorld("val")
    for i in range(30):
        t = world[i][1]
        c = head.positive_cells(out, t)
        got = [{j for j, lv in enumerate(head.levels) if (c[lv][:, 0] == g).any()} for g in range(len(t["boxes"]))]
        assert got == [{int(k)} for k in head.size_level(t["boxes"])], i


def test_code_exercises_of_lessons_06_and_07_run_the_learners_function():
    import torchvision

    iou, nms = cl.exercises.get("06.write_iou"), cl.exercises.get("07.write_nms")
    assert iou.is_correct(lambda a, b: float(box_iou(torch.tensor([a]), torch.tensor([b]))))
    assert not iou.is_correct(lambda a, b: 0.0)

    def unclamped(a, b):  # forgets that disjoint boxes have no overlap
        inter = (min(a[2], b[2]) - max(a[0], b[0])) * (min(a[3], b[3]) - max(a[1], b[1]))
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    assert not iou.is_correct(unclamped)
    assert nms.is_correct(torchvision.ops.nms) and nms.is_correct(cl.boxes.nms)
    assert not nms.is_correct(lambda b, s, t: s.argsort(descending=True))  # keeps everything
    assert not nms.is_correct(lambda b, s, t: torchvision.ops.nms(b, s, t).flip(0))  # not best first


def test_loss_parts_and_empty_images():
    head = cl.heads.build("detection", SPECS, width=16, depth=1, reg_bins=8)
    out = head(feats())
    targets = [{"boxes": torch.tensor([[10.0, 10, 40, 50]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    parts = head.loss(out, targets, return_parts=True)
    assert set(parts) == {"loss", "cls", "box", "dfl"}
    assert torch.isfinite(parts["loss"]) and float(parts["box"]) > 0
    parts["loss"].backward()
    assert head.heads["P3"].cls_out.bias.grad is not None
    with pytest.raises(ValueError, match="targets"):
        head.loss(out, targets[:1])


def test_quality_focal_loss_by_hand():
    from course_lib.heads.detection import quality_focal_loss

    logits = torch.tensor([0.0, 2.0, -1.0])
    target = torch.tensor([0.5, 0.3, 0.0])
    p = torch.sigmoid(logits)
    by_hand = sum(-(t * torch.log(q) + (1 - t) * torch.log(1 - q)) * (q - t).abs() ** 2 for q, t in zip(p, target))
    assert torch.allclose(quality_focal_loss(logits, target), by_hand)
    # a score that already equals its soft target costs nothing (sigmoid(0) = 0.5)
    assert float(quality_focal_loss(torch.zeros(1), torch.full((1,), 0.5))) == 0.0


def test_quality_targets_are_the_iou_of_each_positive_box():
    """With cls_loss="quality" a positive's class target is its box's IoU: a better box lowers the class loss."""
    head = cl.heads.build("detection", {"P4": FeatureSpec(8, 16)}, num_classes=2, width=8, depth=1,
                          cls_loss="quality")
    out = {k: torch.zeros_like(v) for k, v in head({"P4": torch.zeros(1, 8, 8, 8)}).items()}
    box = torch.tensor([[24.0, 24, 56, 56]])  # size 32, centre (40, 40): the cell centres at 24/40/56 px
    targets = [{"boxes": box, "labels": torch.tensor([1])}]
    flat = head.flatten(out)
    a = head.assign(flat["points"], flat["strides"], flat["level"], targets)
    pos = a["pos"][0]
    assert int(pos.sum()) == 9  # 3 x 3 cells: inside the box and within 1.5 strides of its centre
    out["cls.P4"][:] = 2.0  # every score sigmoid(2) = 0.88
    d = encode_distances(flat["points"], box, 16.0).clamp(min=1e-3)  # (64, 4); clamped for the inverse softplus
    exact = out["box.P4"].clone()
    exact[0] = (d + torch.log(-torch.expm1(-d))).T.reshape(4, 8, 8)  # every cell predicts the true box
    loose = exact.clone() + 1.0  # every distance too long
    fit_well = head.loss({**out, "box.P4": exact}, targets, return_parts=True)
    fit_badly = head.loss({**out, "box.P4": loose}, targets, return_parts=True)
    assert float(fit_well["box"]) < 1e-3 < float(fit_badly["box"])
    assert float(fit_well["cls"]) < float(fit_badly["cls"])  # targets near 1 vs near the worse IoU
    with pytest.raises(ValueError, match="cls_loss"):
        cl.heads.build("detection", SPECS, cls_loss="softmax")


def test_decode_round_trip_of_a_planted_box():
    """Plant a box in the raw outputs through encode; decode must give it back."""
    head = cl.heads.build("detection", {"P4": FeatureSpec(8, 16)}, num_classes=2, width=8, depth=1)
    out = head({"P4": torch.zeros(1, 8, 8, 8)})
    out = {k: torch.full_like(v, -20.0) for k, v in out.items()}  # every score ~0, every distance ~0
    box = torch.tensor([30.0, 20, 70, 90])
    row, col = 3, 2  # cell centre (40, 56): inside the box
    point = torch.tensor([(col + 0.5) * 16, (row + 0.5) * 16])
    d = encode_distances(point, box, 16.0)
    raw = d + torch.log(-torch.expm1(-d))  # softplus^-1, so distances() gives d back
    out["box.P4"][0, :, row, col] = raw
    out["cls.P4"][0, 1, row, col] = 3.0
    res = head.decode(out, score_threshold=0.5)[0]
    assert res["labels"].tolist() == [1]
    assert torch.allclose(res["boxes"][0], box, atol=1e-3)
    assert torch.allclose(decode_distances(point, d, 16.0), box)
    cell = head.cell(out, "P4", row, col)
    assert torch.allclose(cell["box"], box, atol=1e-3) and torch.allclose(cell["distances_px"], d * 16, atol=1e-3)


def test_decode_levels_and_nms_switch():
    torch.manual_seed(1)
    head = cl.heads.build("detection", SPECS, width=16, depth=1)
    out = head(feats(1))
    out = {k: torch.full_like(v, 5.0 if k.startswith("cls") else 2.0) for k, v in out.items()}
    # every cell confident and every box ~4 cells wide: many overlapping duplicates
    before = head.decode(out, score_threshold=0.5, nms=False, max_det=10_000, pre_nms_topk=10_000)[0]
    after = head.decode(out, score_threshold=0.5, iou_threshold=0.5, max_det=10_000)[0]
    assert len(after["boxes"]) < len(before["boxes"]) == 336 * 3
    only_p5 = head.decode(out, score_threshold=0.5, nms=False, levels=["P5"], max_det=10_000)[0]
    assert len(only_p5["boxes"]) == 16 * 3 and set(only_p5["level"].tolist()) == {2}
    with pytest.raises(ValueError, match="levels"):
        head.decode(out, levels=["P9"])


def test_detection_head_contract_errors():
    with pytest.raises(ContractError, match="detection"):
        cl.heads.build("detection", {"pooled": FeatureSpec(64, None)})
    with pytest.raises(ValueError, match="reg_bins"):
        cl.heads.build("detection", SPECS, reg_bins=1)
    with pytest.raises(ValueError, match="scale_ranges"):
        cl.heads.build("detection", SPECS, scale_ranges=[(0, 10)])


def test_segmentation_head_shapes_loss_decode():
    head = cl.heads.build("segmentation", SPECS, num_classes=4, width=16)
    logits = head(feats())
    assert logits.shape == (2, 4, 128, 128)
    world = ShapesWorld("val", num_images=2)
    _, targets = world.batch([0, 1])
    loss = head.loss(logits, targets)
    assert torch.isfinite(loss) and loss.ndim == 0
    masks = head.decode(logits)   # one (H, W) class map per image
    assert len(masks) == 2 and all(m.shape == (128, 128) for m in masks)
    with pytest.raises(ValueError, match="at least 2"):
        cl.heads.build("segmentation", SPECS, num_classes=1)


def test_full_detector_from_config():
    model = cl.build_model({"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 32},
                            "head": {"name": "detection", "num_classes": 3, "width": 16}})
    assert model.head.levels == ["P3", "P4", "P5"] and model.head.strides == [8, 16, 32]
    tr = model.trace(torch.rand(3, 128, 128))
    assert tr.head["cls.P3"].shape == (1, 3, 16, 16)
    none = cl.build_model({"backbone": {"name": "tiny_cnn"}, "neck": {"name": "identity", "in_keys": ["C5"]},
                           "head": {"name": "detection", "num_classes": 3, "width": 16}})
    assert none.head.levels == ["C5"] and none.head.scale_ranges == [(0.0, float("inf"))]


@pytest.mark.parametrize("lesson", ["06", "07", "08"])
def test_lesson_exercises_check_instantly(lesson, capsys):
    exs = cl.exercises.for_lesson(lesson)
    assert len(exs) >= 3
    for ex in exs:
        verdict = ex.check(None)
        assert not verdict and "Not answered yet" in str(verdict)  # a blank answer never raises
        assert ex.is_correct(ex.solution())
        assert not ex.is_correct("something else")
    assert cl.exercises.get("07.nms").is_correct(["c", "A"])  # order does not matter


def test_dfl_entropy_from_sharp_to_flat():
    from course_lib.heads.detection import dfl_entropy
    p = torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.25] * 4])
    assert torch.allclose(dfl_entropy(p), torch.tensor([0.0, math.log(2), math.log(4)]), atol=1e-6)


def test_hidden_sides_are_where_the_visible_pixels_stop_short_of_the_box():
    from course_lib.heads.detection import hidden_sides
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, 2:10, 2:10] = True     # fully visible square: box (2, 2, 10, 10)
    masks[1, 4:12, 4:9] = True      # its right part (x 9..12) covered by another shape
    boxes = torch.tensor([[2.0, 2, 10, 10], [4.0, 4, 12, 12]])
    assert hidden_sides(boxes, masks).tolist() == [[False] * 4, [False, False, True, False]]
    # on ShapesWorld the shape drawn last is never covered, and some earlier shape is
    world = ShapesWorld("val")
    found = False
    for i in range(20):
        t = world[i][1]
        h = hidden_sides(t["boxes"], t["masks"])
        assert not h[-1].any()
        found |= bool(h.any())
    assert found


def test_side_distributions_of_every_positive():
    head = cl.heads.build("detection", SPECS, num_classes=3, width=16, depth=1, reg_bins=8)
    targets = [{"boxes": torch.tensor([[10.0, 12, 30, 40]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[50.0, 50, 110, 120], [5.0, 5, 15, 15]]), "labels": torch.tensor([0, 2])}]
    out = head(feats())
    sides = head.side_distributions(out, targets)
    flat = head.flatten(out)
    a = head.assign(flat["points"], flat["strides"], flat["level"], targets)
    p = int(a["pos"].sum())
    assert sides["probs"].shape == (p, 4, 8) and sides["target"].shape == (p, 4)
    assert torch.allclose(sides["probs"].sum(-1), torch.ones(p, 4), atol=1e-5)
    assert sides["image"].tolist().count(0) == int(a["pos"][0].sum())
    assert set(sides["gt_index"][sides["image"] == 1].tolist()) == {0, 1}
    assert bool((sides["target"] >= 0).all())  # every positive's point lies inside its box
    with pytest.raises(ValueError):
        cl.heads.build("detection", SPECS, reg_bins=0).side_distributions(out, targets)


def test_branch_table_lists_each_levels_branches_and_all_parameters():
    specs = {"P3": FeatureSpec(64, 8), "P4": FeatureSpec(64, 16)}
    kw = dict(num_classes=3, width=48, depth=2, reg_bins=8)
    for decoupled, branches in ((True, ["stem", "class", "box"]), (False, ["stem", "shared", "class out", "box out"])):
        head = cl.heads.build("detection", specs, decoupled=decoupled, **kw)
        rows = head.branch_table()
        assert [r["branch"] for r in rows if r["level"] == "P3"] == branches
        assert sum(r["params"] for r in rows) == sum(p.numel() for p in head.parameters())   # nothing left out
        assert {r["out ch"] for r in rows if r["branch"].startswith("class")} == {3}
        assert {r["out ch"] for r in rows if r["branch"].startswith("box")} == {4 * 8}       # 4 sides x 8 bins
    assert head.branch_table(["P4"])[0]["level"] == "P4"
