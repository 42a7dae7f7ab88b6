"""The course's visual language (course_lib.render): class colours, colour maps, fonts, boxes and masks."""

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from course_lib import render

matplotlib.use("Agg")


def test_class_colour_is_stable_and_shared_by_index_and_name():
    assert render.class_colour(0) == render.class_colour("circle") == render.OKABE_ITO[0]
    assert render.class_colour(2) == render.class_colour("triangle")
    assert render.class_colour("person") == render.class_colour("person")   # a hash, the same every call
    assert len({render.class_colour(c) for c in range(len(render.OKABE_ITO))}) == len(render.OKABE_ITO)
    assert render.mask_colour(1) == render.class_colour(0) and render.mask_colour(0) == render.BACKGROUND
    assert render.ORANGE in render.OKABE_ITO and render.RED in render.OKABE_ITO   # schematic colours too
    assert render.mpl_colour("circle") == render.mpl_colour(render.OKABE_ITO[0]) == (230 / 255, 159 / 255, 0.0)


def test_draw_boxes_colours_by_class_and_draws_the_best_box_last():
    img = np.zeros((100, 100, 3), dtype=np.uint8)
    boxes = [[5, 5, 90, 90], [5, 5, 90, 90]]                 # the same box twice: the one drawn last shows
    for scores, winner in (([0.9, 0.2], 0), ([0.2, 0.9], 1)):
        out = np.asarray(render.draw_boxes(img, boxes, scores=scores, classes=[0, 1], width=1))
        assert tuple(out[60, 90]) == render.class_colour(winner)   # the right edge, clear of the labels
    by_name = np.asarray(render.draw_boxes(img, [[5, 5, 90, 90]], labels=["square"], width=1))
    assert tuple(by_name[60, 90]) == render.class_colour("square")


def test_label_width_is_measured_and_labels_stay_inside():
    text = "a rather long label near the edge 0.93"
    w, h = render.text_size(text)
    assert w == pytest.approx(render.font().getbbox(text)[2], abs=1) and w > 6 * len(text) * 0.8
    img = np.zeros((60, 300, 3), dtype=np.uint8)
    box = [[270, 0, 299, 20]]                                # at the top-right corner: no room above
    out = np.asarray(render.draw_boxes(img, box, labels=[text[:-5]], scores=[0.93], classes=[4], width=1))
    tagged = np.all(out == render.class_colour(4), axis=-1)
    ys, xs = np.nonzero(tagged)
    assert xs.min() >= 0 and xs.max() < 300 and ys.min() >= 0
    rows = np.nonzero(tagged[:, :270].sum(1) > 50)[0]      # the tag's rows (the box is only 30 px wide)
    assert tagged[rows].sum(1).max() >= w + 3               # the whole measured text fits on the tag: not clipped
    x0 = int(np.nonzero(tagged[rows[0]])[0].min())
    assert x0 == 300 - (w + 4)                               # pushed left just enough to stay inside
    ink = (out[rows[0]:rows[-1] + 1, x0:] != render.class_colour(4)).any(-1)
    assert ink[:, : w // 2].any() and ink[:, w // 2:].any()  # text on both halves of the tag


def test_labels_avoid_each_other():
    taken = [render.place_label([10, 20, 40, 50], (30, 14), (100, 100))]
    second = render.place_label([12, 22, 42, 52], (30, 14), (100, 100), taken)
    assert taken[0] == (10, 6, 40, 20) and render._overlap(taken[0], second) == 0


def test_colorize_never_uses_jet_and_diverging_maps_are_centred():
    import inspect

    for fn in (render.colorize, render.tile, render.overlay, render.feature_grid):
        default = inspect.signature(fn).parameters["cmap"].default
        assert default not in render.BANNED_CMAPS, fn.__name__
    a = np.linspace(-1, 3, 16, dtype=np.float32).reshape(4, 4)
    assert np.array_equal(render.colorize(a), render.lut("viridis")[(render.normalize01(a) * 255).astype(np.uint8)])
    kw = render.imshow_kwargs(a, signed=True)
    assert kw["cmap"] == render.DIVERGING and kw["vmin"] == -kw["vmax"] == -3
    zero = render.colorize(np.array([[0.0, -1.0], [2.0, 0.0]]), signed=True)
    assert tuple(zero[0, 0]) == tuple(render.lut(render.DIVERGING)[127])   # 0 sits in the middle of the map
    assert render.value_range([np.ones(3), -2 * np.ones(3)]) == (-2.0, 2.0)   # shared and centred
    assert render.value_range(np.array([-0.2, 5.0]))[0] == pytest.approx(-0.2)   # a SiLU tail is not "signed"


def test_map_grid_shares_one_scale_and_says_so():
    maps = [torch.randn(6, 6), torch.randn(6, 6) * 3]
    fig = render.map_grid(maps, ["a", "b"], ncols=2, signed=True)
    ims = [ax.images[0] for ax in fig.axes if ax.images]
    assert len({im.get_clim() for im in ims}) == 1 and ims[0].get_clim()[0] == -ims[0].get_clim()[1]
    assert "one colour scale" in fig._suptitle.get_text() and len(fig.axes) == 3   # + one colour bar
    own = render.map_grid(maps, ncols=2, shared=False)
    assert "own colour scale" in own._suptitle.get_text() and len(own.axes) == 4


def test_course_style_sets_readable_text():
    import matplotlib as mpl

    render.use_course_style()
    for key in ("font.size", "axes.titlesize", "xtick.labelsize", "legend.fontsize"):
        size = mpl.rcParams[key]
        assert (size if isinstance(size, float) else mpl.font_manager.FontProperties(size=size).get_size()) >= 9
    assert mpl.rcParams["image.cmap"] not in render.BANNED_CMAPS
    assert mpl.rcParams["font.sans-serif"][0] == "DejaVu Sans"


def test_mask_overlay_paints_classes_on_a_grey_photo():
    img = torch.zeros(3, 8, 8)
    img[0] = 1.0                                             # a red photo: its colour must not survive
    cls = torch.zeros(8, 8, dtype=torch.long)
    cls[2:6, 2:6] = 2
    out = np.asarray(render.mask_overlay(img, cls, opacity=0.5))
    r, g, b = out[0, 0]
    assert r == g == b                                       # background: grey
    assert tuple(out[2, 2]) == render.mask_colour(2)         # contour in the full class colour
    panels = render.segmentation_panels(img, cls, cls, ["background", "circle", "square"])
    assert panels.width >= 3 * 16 and np.any(np.all(np.asarray(panels) == render.class_colour("square"), -1))


def _glyph_ink(text: str) -> np.ndarray:
    img = Image.new("L", (80, 40), 0)
    ImageDraw.Draw(img).text((4, 4), text, fill=255, font=render.font(24))
    return np.asarray(img)


def test_cjk_font_draws_chinese():
    if not render.has_cjk_font():
        pytest.skip("no CJK font installed (CI installs fonts-noto-cjk); labels fall back to DejaVu Sans")
    assert render.cjk_font_family() in render.CJK_FONTS
    assert render.course_rc()["font.sans-serif"][1] == render.cjk_font_family()
    try:
        from fontTools.ttLib import TTFont
    except ImportError:
        TTFont = None
    if TTFont is not None:
        path, index = render.font_file()
        cmap = TTFont(path, fontNumber=index).getBestCmap()
        assert all(ord(ch) in cmap for ch in "骨干网络")
    ink, tofu = _glyph_ink("骨干"), _glyph_ink("\U0010fffd\U0010fffd")   # a code point no font has
    assert ink.sum() > 0 and not np.array_equal(ink, tofu)
    assert render.text_size("骨干")[0] > 0


def test_selective_channel_finds_the_object_and_strength_cannot_cancel():
    fmap = torch.randn(5, 8, 8) * 0.1
    fmap[3, 2:5, 2:5] += 2.0                                 # channel 3 lights up on the object only
    fmap[1] += 1.0                                           # channel 1 is bright everywhere (what a mean sees)
    mask = render.box_cells((16, 16, 40, 40), 8, (8, 8))
    assert mask.sum() == 9 and mask[2:5, 2:5].all()
    assert render.selective_channel(fmap, mask) == 3
    pm = torch.stack([torch.ones(4, 4), -torch.ones(4, 4)])  # mean over channels is 0, strength is sqrt(2)
    np.testing.assert_allclose(render.strength(pm), np.sqrt(2), rtol=1e-6)


def test_fpn_figure_draws_wiring_and_centred_shared_difference_maps():
    on = {k: torch.randn(4, s, s) for k, s in (("P3", 8), ("P4", 4), ("P5", 2))}
    off = {k: (v * 0.5 if k != "P5" else v) for k, v in on.items()}
    fig = render.fpn_figure(np.zeros((32, 32, 3), np.uint8), [[2, 2, 10, 10]], [1], on, off, channels=[8, 16, 32])
    diff = [a for a in fig.axes if a.get_title().endswith("top-down adds")]
    assert len(diff) == 3
    clims = {a.images[0].get_clim() for a in diff}
    assert len(clims) == 1 and next(iter(clims))[0] == -next(iter(clims))[1]   # one scale, centred on zero
    assert float(np.abs(diff[2].images[0].get_array()).max()) == 0              # P5 unchanged
    texts = [t.get_text() for a in fig.axes for t in a.texts]
    assert "+" in texts and any("upsample 2x" in t for t in texts)
    assert min(t.get_fontsize() for a in fig.axes for t in a.texts) >= render.MIN_PT
    matplotlib.pyplot.close(fig)


def test_tap_markers_differ_by_shape_not_only_colour():
    img = Image.new("RGB", (40, 20), render.WHITE)
    render.tap_markers(img, [(10, 10), (30, 10)], [True, False])
    a = np.asarray(img)
    assert tuple(a[10, 10]) == render.BLUE                  # a filled dot inside the map
    assert tuple(a[10, 30]) == render.RED                   # the cross through the ring's centre
    assert tuple(a[10, 33]) == render.WHITE                 # ... and a hollow ring around it
    handles, labels = render.tap_legend_handles()
    assert len(handles) == len(labels) == len(render.TAP_LEGEND)


def test_image_map_rows_and_probe_figure_have_colour_bars():
    fig = render.image_map_rows([(np.zeros((8, 8, 3), np.uint8), [np.random.rand(4, 4)] * 2, ["a", "b"])])
    assert sum(a.get_label() == "<colorbar>" for a in fig.axes) == 2
    matplotlib.pyplot.close(fig)
    fig = render.attention_probe_figure(torch.rand(3, 8, 8), 1, np.full((4, 4), 0.95),
                                        np.random.rand(6, 5), 3)
    assert sum(a.get_label() == "<colorbar>" for a in fig.axes) == 2
    assert "flat" in fig.axes[1].get_title()
    matplotlib.pyplot.close(fig)


def test_labelled_scatter_names_every_point_inside_the_picture():
    fig = render.labelled_scatter([1.0, 10.0, 3.0], [0.2, 15.0, 1.0], ["tiny", "big", "mid"], "params (M)", "GFLOPs")
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["big", "mid", "tiny"]
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "GFLOPs"
    assert all(t.get_fontsize() >= render.MIN_PT for t in ax.texts)
    colours = {tuple(c.get_facecolor()[0]) for c in ax.collections}
    assert len(colours) == 3                                          # one colour per named point


def test_layer_graph_draws_every_layer_and_every_skip_connection():
    rows = [{"index": 0, "from": -1, "module": "Conv", "part": "backbone", "params": 464, "stride": 2, "channels": 16},
            {"index": 1, "from": -1, "module": "C2f", "part": "backbone", "params": 4672, "stride": 8, "channels": 32},
            {"index": 2, "from": -1, "module": "Conv", "part": "backbone", "params": 9000, "stride": 16, "channels": 64},
            {"index": 3, "from": -1, "module": "Upsample", "part": "neck", "params": 0, "stride": 8, "channels": 64},
            {"index": 4, "from": "[-1, 1]", "module": "Concat", "part": "neck", "params": 0, "stride": 8,
             "channels": 96},
            {"index": 5, "from": -1, "module": "Conv", "part": "neck", "params": 900, "stride": 16, "channels": 32},
            {"index": 6, "from": "[4, 5]", "module": "Detect", "part": "head", "params": 5000, "stride": "8/16",
             "channels": 7}]
    fig = render.layer_graph(rows)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert all(any(t.startswith(f"{r['index']}  {r['module']}") for t in texts) for r in rows)  # one box per layer
    assert any("96 ch  /8" in t for t in texts)                        # channels and stride on every box
    assert fig.n_skips == 3                                          # the concat's input 1 and the head's two inputs
    arrows = [t for t in ax.texts if type(t).__name__ == "Annotation"]
    assert len(arrows) == 8                                          # one arrow per input of every layer
    assert min(t.get_fontsize() for t in ax.texts) >= render.MIN_PT
    matplotlib.pyplot.close(fig)


def test_seed_bars_show_the_mean_and_every_seed():
    ax = render.seed_bars({"a": {"x": [0.2, 0.4], "y": [0.5, 0.7, 0.6]}, "b": {"x": [0.9, 0.9]}}, baseline=0.3)
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == [0.0, 0.3, 0.6, 0.9]                     # means; "y" is missing in group b
    dots = sum(len(line.get_xdata()) for line in ax.lines if line.get_marker() == ".")
    assert dots == 7                                          # one dot per seed
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    matplotlib.pyplot.close(ax.figure)


# ------------------------------------------------------------------------------ pictures shown: alt text, rules
def test_figure_rules_find_small_text_banned_maps_and_maps_without_a_scale():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3)
    axes[0].imshow(np.random.default_rng(0).random((4, 4)), cmap="jet")
    axes[0].set_title("tiny", fontsize=6)
    axes[1].imshow(np.ones((4, 4, 3)))                      # a photo: no colour bar needed
    axes[2].plot([0, 1], [0, 1])
    axes[2].set_xlabel("readable")
    render.figure_bytes(fig)                                # draw it: tick labels exist once drawn
    problems = render.figure_problems(fig)
    assert any("'tiny' is 6.0 pt" in p for p in problems)
    assert any("'jet'" in p for p in problems)
    assert any("neither a colour bar" in p and "tiny" in p for p in problems)
    assert len(problems) == 3 and not any("readable" in p for p in problems)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3)
    maps = [np.random.default_rng(i).random((4, 4)) for i in range(3)]
    kw = render.imshow_kwargs(maps)
    ims = [ax.imshow(m, **kw) for ax, m in zip(axes, maps)]
    render.add_colorbar(ims[-1])                            # one bar for a shared scale is enough
    render.figure_bytes(fig)
    assert render.figure_problems(fig) == []
    ims[0].set_clim(0, 5)                                   # ... but not for a panel on a scale of its own
    assert len(render.figure_problems(fig)) == 1
    plt.close(fig)
    fig = render.map_grid(maps, shared=False)
    render.figure_bytes(fig)
    assert render.figure_problems(fig) == []
    plt.close(fig)


def test_a_described_picture_carries_its_alt_text_into_the_notebook_and_the_page():
    import base64

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert render.alt_text(fig) is None
    assert render.describe(fig, "  A line  falling from 1 to 0 ") is fig
    data, meta = render.picture_bundle(fig)
    assert meta["image/png"] == {"alt": "A line falling from 1 to 0", "course_problems": []}
    assert base64.b64decode(data["image/png"])[:4] == b"\x89PNG"
    assert 'alt="A line falling from 1 to 0"' in data["text/html"] and data["image/png"] in data["text/html"]
    plt.close(fig)
    img = render.describe(Image.new("RGB", (8, 8)), 'Eight "black" pixels')
    data, meta = render.picture_bundle(img)
    assert 'alt="Eight &quot;black&quot; pixels"' in data["text/html"]
    data, meta = render.picture_bundle(Image.new("RGB", (8, 8)))      # no words: no HTML, and the page says so
    assert "text/html" not in data and "alt" not in meta["image/png"]
    with pytest.raises(ValueError, match="empty"):
        render.describe(img, "   ")


def test_ipython_shows_figures_through_the_bundle_with_alt_text():
    import matplotlib.pyplot as plt
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        assert render.install_display()
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        data, meta = shell.display_formatter.format(render.describe(fig, "A rising line"))
        assert meta["image/png"]["alt"] == "A rising line" and "alt=" in data["text/html"]
        plt.close(fig)
    finally:
        InteractiveShell.clear_instance()


def test_heat_over_photos_gets_the_scale_it_was_drawn_on():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    for ax in axes:
        ax.imshow(render.overlay(np.zeros((8, 8, 3), np.uint8), np.eye(8), normalize=False))
    cb = render.heat_colorbar(axes, label="evidence")
    assert (cb.norm.vmin, cb.norm.vmax, cb.cmap.name) == (0.0, 1.0, render.HEAT)
    render.figure_bytes(fig)
    assert render.figure_problems(fig) == []
    plt.close(fig)


def test_text_drawn_into_pictures_is_never_below_the_rule():
    assert render.font().size == render.FONT_PX and render.font(16).size == 16
    with pytest.raises(ValueError, match="at least"):
        render.font(render.FONT_PX - 3)
