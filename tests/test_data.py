"""ShapesWorld: deterministic by seed, and its targets agree with each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.data import CLASSES, ShapesWorld, dominant_label, size_bucket, size_ranges


def test_same_seed_same_images_and_splits_differ():
    a, b = ShapesWorld("val"), ShapesWorld("val")
    for i in (0, 7, 499):
        sa, sb = a.scene(i), b.scene(i)
        assert np.array_equal(sa.image, sb.image)
        assert np.array_equal(sa.boxes, sb.boxes) and np.array_equal(sa.labels, sb.labels)
    assert not np.array_equal(ShapesWorld("train").scene(0).image, a.scene(0).image)
    assert not np.array_equal(ShapesWorld("val", seed=1).scene(0).image, a.scene(0).image)
    # random access: image 5 does not depend on which images were drawn before
    c = ShapesWorld("val")
    assert np.array_equal(c.scene(5).image, a.scene(5).image)


def test_targets_are_consistent():
    world = ShapesWorld("train", num_images=60)
    n_objects = 0
    for i in range(len(world)):
        image, t = world[i]
        assert image.shape == (3, 128, 128) and image.dtype == torch.float32
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        boxes, labels, masks, sem = t["boxes"], t["labels"], t["masks"], t["semantic"]
        n = len(boxes)
        n_objects += n
        assert 1 <= n <= world.max_objects
        assert labels.shape == (n,) and masks.shape == (n, 128, 128) and sem.shape == (128, 128)
        assert int(labels.min()) >= 0 and int(labels.max()) < len(CLASSES)
        for box, mask in zip(boxes, masks):
            assert mask.any(), "every object keeps visible pixels"
            ys, xs = torch.nonzero(mask, as_tuple=True)
            x1, y1, x2, y2 = box.tolist()
            # the box encloses the visible mask (pixel i covers [i, i + 1))
            assert x1 <= int(xs.min()) and int(xs.max()) + 1 <= x2
            assert y1 <= int(ys.min()) and int(ys.max()) + 1 <= y2
            assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
        # instance masks do not overlap, and the semantic mask is their union with labels + 1
        assert int(masks.sum(0).max()) <= 1
        expect = torch.zeros(128, 128, dtype=torch.long)
        for lab, mask in zip(labels, masks):
            expect[mask] = int(lab) + 1
        assert torch.equal(sem, expect)
        assert torch.allclose(t["sizes"], ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt())
    assert n_objects > 100


def test_sizes_span_small_to_large_and_occlusion_happens():
    world = ShapesWorld("train", num_images=300)
    sizes = np.concatenate([world.scene(i).sizes for i in range(300)])
    buckets = size_bucket(sizes)
    for name in ("small", "medium", "large"):
        assert buckets.count(name) > 0.15 * len(sizes), name
    assert sizes.min() >= 6.5 and sizes.max() <= 65  # a triangle of size 8 is 8 x 6 px
    # some objects are partly hidden: their visible mask is smaller than the full shape's box fill
    occluded = 0
    for i in range(100):
        sc = world.scene(i)
        for box, mask, lab in zip(sc.boxes, sc.masks, sc.labels):
            if CLASSES[lab] == "square":
                area = (box[2] - box[0]) * (box[3] - box[1])
                occluded += int(mask.sum() < area)
    assert occluded > 0


def test_size_ranges_definition():
    r = size_ranges(128)
    assert r["small"] == (0.0, 16.0) and r["medium"] == (16.0, 32.0) and r["large"][0] == 32.0
    assert size_bucket([15.9, 16, 31.9, 32, 64]) == ["small", "medium", "medium", "large", "large"]
    assert size_ranges(256)["small"] == (0.0, 32.0)


def test_classify_mode_and_batches():
    world = ShapesWorld("val", mode="classify", num_images=20)
    x, y = world.batch(range(8))
    assert x.shape == (8, 3, 128, 128) and y.shape == (8,) and y.dtype == torch.long
    assert set(y.tolist()) <= set(range(len(CLASSES)))
    assert len(world.scene(0).labels) == 1
    det = ShapesWorld("val", num_images=10)
    images, targets = det.materialize()
    assert images.dtype == torch.uint8 and images.shape == (10, 3, 128, 128) and len(targets) == 10
    assert torch.equal(images[3].float() / 255, det[3][0])
    assert targets[3]["semantic"].dtype == torch.uint8 and "masks" not in targets[3]  # the memory-light cache
    assert torch.equal(targets[3]["semantic"].long(), det[3][1]["semantic"])
    assert torch.equal(targets[3]["boxes"], det[3][1]["boxes"])


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="split"):
        ShapesWorld("valid")
    with pytest.raises(ValueError, match="shape classes"):
        ShapesWorld(classes=("circle", "hexagon"))
    with pytest.raises(ValueError, match="min_size"):
        ShapesWorld(min_size=40, max_size=20)
    with pytest.raises(IndexError):
        ShapesWorld("val", num_images=3).scene(3)


def test_small_data_sets_are_deterministic_and_shaped_for_a_backbone():
    from course_lib.data import attention_probe_data, lfw_split, shapes_scene, toy_shapes

    xtr, ytr, xva, yva = lfw_split(size=32, n_train=140, seed=0)
    assert xtr.shape == (140, 3, 32, 32) and xva.shape == (60, 3, 32, 32)
    assert torch.equal(xtr[:, 0], xtr[:, 1]) and 0 <= float(xtr.min()) and float(xtr.max()) <= 1
    assert int(ytr.sum() + yva.sum()) == 100  # 100 faces in all
    assert torch.equal(lfw_split(32, seed=0)[0], xtr) and not torch.equal(lfw_split(32, seed=1)[0], xtr)
    x, y = toy_shapes(30, size=32, seed=3)
    assert x.shape == (30, 3, 32, 32) and sorted(set(y.tolist())) == [0, 1, 2]
    assert torch.bincount(y).tolist() == [10, 10, 10]
    assert torch.equal(toy_shapes(30, 32, seed=3)[0], x)
    scene, objects = shapes_scene(192, 256, seed=0)
    assert scene.shape == (192, 256, 3) and scene.dtype == np.uint8
    assert sorted(o.size for o in objects)[0] <= 10 and max(o.size for o in objects) >= 150
    assert np.array_equal(shapes_scene(192, 256, seed=0)[0], scene)
    X, y, boxes = attention_probe_data(n=8, size=48, seed=2)
    assert X.shape == (8, 3, 48, 48) and y.tolist() == [1.0, 0.0] * 4
    assert all((b is None) == (lab == 0) for b, lab in zip(boxes, y.tolist()))


def test_dominant_label_is_the_shape_with_most_pixels():
    world = ShapesWorld("val", num_images=20)
    for i in range(20):
        _, t = world[i]
        areas = [int(t["masks"][t["labels"] == c].sum()) for c in range(len(CLASSES))]
        assert dominant_label(t) == int(np.argmax(areas))
