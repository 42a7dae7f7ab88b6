// The course's explorers, drawn in the browser.  One file, two hosts:
//  * JupyterLab: course_lib.widgets.browser.MapView (an anywidget) loads this file as its module, with
//    `export default {render}` appended; its ipywidgets controls are jslinked to the view's state, so a
//    slider move redraws here, in the same frame, without waiting for the kernel.
//  * the offline course site: tools/build_site.py embeds each explorer's snapshot (its payload and state)
//    in the page; courseExplorerBoot() below gives each one a small model of its own and the controls the
//    widgets would have had (sliders are input[type=range]).
// What it draws: a grid of maps (uint8, one colour scale per map), coloured by the colour map's lookup
// table, side by side or over the photo.  The Python side (course_lib/widgets/browser.py) quantises the
// maps once per image; every control here only picks and re-colours them.

function courseDecode(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function courseFrame(el) {
  // every view: a root with the class the tests and the site look for, a bar for controls, the canvas
  const root = document.createElement("div");
  root.className = "cl-explorer cl-view";
  const bar = document.createElement("div");
  bar.className = "cl-controls";
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  root.appendChild(bar);
  root.appendChild(canvas);
  el.appendChild(root);
  return { root, bar, canvas };
}

function courseControls(model, bar, payload, standalone) {
  // the site's own controls (in JupyterLab the explorer's ipywidgets controls, jslinked, play this part):
  // one per entry of payload.controls, labelled by payload.text, each kept in step with the model
  const specs = payload.controls || {}, text = payload.text || {};
  function add(name, input, show) {
    if (!standalone || !specs[name]) return;
    const label = document.createElement("label");
    label.textContent = (text[name] || name) + " ";
    input.setAttribute("aria-label", text[name] || name);
    label.appendChild(input);
    bar.appendChild(label);
    show();
    model.on("change:" + name, show);
  }
  function send(name, value) { model.set(name, value); model.save_changes(); }
  return {
    slider(name) {
      const input = document.createElement("input"), spec = specs[name] || {};
      input.type = "range";
      input.min = String(spec.min);
      input.max = String(spec.max);
      input.step = String(spec.step || 1);
      input.addEventListener("input", () => send(name, Number(input.value)));
      add(name, input, () => { input.value = String(model.get(name)); });
    },
    select(name, labels) {                     // the value is the option's index
      const input = document.createElement("select");
      labels.forEach((label, i) => {
        const o = document.createElement("option");
        o.value = String(i);
        o.textContent = label;
        input.appendChild(o);
      });
      input.addEventListener("change", () => send(name, Number(input.value)));
      add(name, input, () => { input.value = String(model.get(name)); });
    },
    checkbox(name) {
      const input = document.createElement("input");
      input.type = "checkbox";
      input.addEventListener("change", () => send(name, input.checked));
      add(name, input, () => { input.checked = !!model.get(name); });
    },
  };
}

function courseExplorerRender(model, el, standalone) {
  let payload, groups, lut, lutOver, photo = null;
  function load() {
    // what the kernel sent for the current image (a new image sends a new payload)
    payload = model.get("payload") || {};
    groups = (payload.groups || []).map((g) => Object.assign({}, g, {
      bytes: g.data ? courseDecode(g.data) : null, lut: g.lut ? courseDecode(g.lut) : null }));
    lut = courseDecode(payload.lut || "");
    lutOver = payload.lut_over ? courseDecode(payload.lut_over) : lut;   // the colours over the photo
    photo = null;
    if (payload.photo) {
      const p = new Image();
      p.onload = () => { photo = p; draw(); };
      p.src = payload.photo;
    }
  }
  load();
  const { root, bar, canvas } = courseFrame(el);
  const caption = document.createElement("div");
  caption.className = "cl-caption";
  root.appendChild(caption);
  const ui = courseControls(model, bar, payload, standalone);
  ui.select("group", groups.map((g) => g.name));
  ui.select("mode", ((payload.controls || {}).mode || {}).options || []);
  ui.slider("channel");       // first: in "channel" mode it is the control that changes the picture
  ui.slider("k");
  ui.checkbox("overlay");
  ui.slider("opacity");

  function chosen(g) {
    // which maps of group g to show: all of a fixed group, the top k by rank, or one channel
    if (g.fixed) return [...Array(g.n).keys()];
    if ((payload.modes || ["topk"])[model.get("mode")] === "channel") {
      const c = Math.max(0, Math.min(g.n - 1, model.get("channel")));
      return [c];
    }
    const order = g.order || [...Array(g.n).keys()];
    return order.slice(0, Math.max(1, Math.min(model.get("k"), order.length)));
  }

  function bars(g, ctx) {
    // a vector (pooled features, class scores): its k largest entries as bars, longest first
    const idx = chosen(g);
    const rowh = 18, labw = 150, w = 420;
    canvas.width = w;
    canvas.height = idx.length * rowh + 4;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const top = Math.max(1e-8, ...idx.map((i) => Math.abs(g.values[i])));
    ctx.font = "11px sans-serif";
    idx.forEach((i, j) => {
      const y = 2 + j * rowh;
      ctx.fillStyle = "#222222";
      ctx.fillText(String((g.labels || [])[i] ?? ("#" + i)).slice(0, 24), 2, y + 12);
      ctx.fillStyle = "#0072b2";
      ctx.fillRect(labw, y + 2, Math.max(1, (w - labw - 50) * Math.abs(g.values[i]) / top), rowh - 6);
      ctx.fillStyle = "#222222";
      ctx.fillText(g.values[i].toFixed(2), w - 44, y + 12);
    });
    return idx;
  }

  function draw() {
    const g = groups[Math.max(0, Math.min(groups.length - 1, model.get("group")))];
    if (!g) return;
    if (g.kind === "bars") {
      const idx = bars(g, canvas.getContext("2d"));
      caption.textContent = g.caption || "";
      canvas.setAttribute("aria-label", (payload.alt || "") + " " + g.name + ": " +
                          idx.map((i) => (g.labels || [])[i]).join(", "));
      root.dataset.drawn = String(Number(root.dataset.drawn || 0) + 1);
      return;
    }
    const idx = chosen(g);
    const over = !!model.get("overlay") && photo !== null;
    const table = g.lut || (over ? lutOver : lut);
    const ncols = Math.min(idx.length, payload.ncols || 4);
    const nrows = Math.ceil(idx.length / ncols);
    const cell = idx.length === 1 ? (payload.single || payload.cell || 96) : (payload.cell || 96);
    const ch = Math.round(cell * g.h / g.w);
    const pad = 2, label = 14;
    canvas.width = ncols * (cell + pad);
    canvas.height = nrows * (ch + pad + label);
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const tile = document.createElement("canvas");
    tile.width = g.w;
    tile.height = g.h;
    const tctx = tile.getContext("2d");
    const img = tctx.createImageData(g.w, g.h);
    const alpha = over ? Math.round(255 * Number(model.get("opacity") ?? 0.6)) : 255;
    idx.forEach((c, j) => {
      const base = c * g.h * g.w;
      for (let p = 0; p < g.h * g.w; p++) {
        const v = g.bytes[base + p];
        img.data[4 * p] = table[3 * v];
        img.data[4 * p + 1] = table[3 * v + 1];
        img.data[4 * p + 2] = table[3 * v + 2];
        img.data[4 * p + 3] = alpha;
      }
      tctx.putImageData(img, 0, 0);
      const x = (j % ncols) * (cell + pad), y = Math.floor(j / ncols) * (ch + pad + label);
      if (over) ctx.drawImage(photo, x, y, cell, ch);
      ctx.imageSmoothingEnabled = over;     // alone: one square per cell of the map; over the photo: smooth
      ctx.drawImage(tile, x, y, cell, ch);
      ctx.fillStyle = "#222222";
      ctx.font = "11px sans-serif";
      ctx.fillText((g.labels || [])[c] ?? ("#" + c), x + 2, y + ch + label - 3);
    });
    caption.textContent = g.caption || "";
    canvas.setAttribute("aria-label", (payload.alt || "") + " " + g.name + ": " +
                        idx.map((c) => (g.labels || [])[c] ?? ("#" + c)).join(", "));
    root.dataset.drawn = String(Number(root.dataset.drawn || 0) + 1);   // for tests: how many redraws
  }

  model.on("change:payload", () => { load(); draw(); });
  ["group", "k", "channel", "mode", "overlay", "opacity"].forEach((n) => model.on("change:" + n, draw));
  draw();
  return () => {};
}

// A detector's view: every candidate box of one image above the lowest score the slider allows, with its
// class, level and score.  Thresholds, level and class filter them here, and class-wise NMS (greedy, as
// torchvision's batched_nms) runs here too: a few hundred boxes take well under a millisecond.
function courseIoU(a, b) {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]), h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

function courseNms(ids, c, thr) {
  // ids sorted by score, best first; a box goes when it overlaps a kept box of its class by more than thr
  const keep = [], gone = new Set();
  for (let a = 0; a < ids.length; a++) {
    const i = ids[a];
    if (gone.has(i)) continue;
    keep.push(i);
    for (let b = a + 1; b < ids.length; b++) {
      const j = ids[b];
      if (!gone.has(j) && c.labels[j] === c.labels[i] && courseIoU(c.boxes[i], c.boxes[j]) > thr) gone.add(j);
    }
  }
  return keep;
}

function courseBoxesRender(model, el, standalone) {
  let p, rgb, seg, lut;
  const { root, canvas, bar } = courseFrame(el);

  function load() {
    p = model.get("payload") || {};
    rgb = courseDecode(p.photo || "");
    seg = p.seg ? courseDecode(p.seg) : null;
    lut = courseDecode(p.lut || "");
    p.mapBytes = {};
    Object.entries(p.maps || {}).forEach(([lv, m]) => { p.mapBytes[lv] = courseDecode(m.data); });
  }
  load();

  const text = p.text || {};
  function fmt(key, fields) {
    return String(text[key] || key).replace(/\{(\w+)\}/g, (_, k) => String(fields[k]));
  }
  const ui = courseControls(model, bar, p, standalone);
  const gallery = p.gallery || null;               // the site: the boxes of a few pictures, made in advance
  if (gallery) {
    ui.select("image", gallery.map((g) => g.name));
    model.on("change:image", () => {
      model.set("payload", Object.assign({}, gallery[model.get("image")].payload, { gallery, controls: p.controls,
                                                                                   text: p.text }), true);
      load();
      draw();
    });
  }
  ui.slider("score");
  ui.slider("iou");
  ui.select("level", [text.all || "all", ...(p.levels || [])]);
  ui.select("cls", [text.all || "all", ...(p.class_names || [])]);
  if (p.seg) ui.slider("opacity");

  function basePixels(ctx) {
    // the photo, or (a segmenter and some opacity) its grey copy with the class colours and their outlines
    const w = p.w, h = p.h, img = ctx.createImageData(w, h), a = Number(model.get("opacity"));
    for (let i = 0; i < w * h; i++) {
      let r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
      if (seg && a > 0) {
        const l = 0.299 * r + 0.587 * g + 0.114 * b, c = seg[i];
        const x = i % w, y = (i - x) / w;
        const edge = (x + 1 < w && seg[i + 1] !== c) || (x > 0 && seg[i - 1] !== c) ||
                     (y + 1 < h && seg[i + w] !== c) || (y > 0 && seg[i - w] !== c);
        const al = edge ? 1 : (c > 0 ? a : 0);
        const col = p.palette[c > 0 ? ((c - 1) % (p.palette.length - 1)) + 1 : 0];
        r = l * (1 - al) + col[0] * al; g = l * (1 - al) + col[1] * al; b = l * (1 - al) + col[2] * al;
      }
      img.data[4 * i] = r; img.data[4 * i + 1] = g; img.data[4 * i + 2] = b; img.data[4 * i + 3] = 255;
    }
    return img;
  }

  function chosen() {
    const c = p.cands, lvl = model.get("level"), cls = model.get("cls"), thr = Number(model.get("score"));
    const ids = [];
    for (let i = 0; i < c.scores.length; i++) {
      if (c.scores[i] <= thr) continue;
      if (lvl > 0 && c.level[i] !== lvl - 1) continue;
      ids.push(i);
    }
    ids.sort((i, j) => c.scores[j] - c.scores[i]);
    const after = courseNms(ids, c, Number(model.get("iou")));
    const only = (list) => (cls > 0 ? list.filter((i) => c.labels[i] === cls - 1) : list);
    return [only(ids), only(after)];
  }

  function drawBoxes(ctx, x0, ids, title) {
    const c = p.cands, s = p.scale;
    ctx.font = "11px sans-serif";
    [...ids].reverse().forEach((i) => {                          // the best box last, on top
      const [x1, y1, x2, y2] = c.boxes[i].map((v) => v * s);
      const col = p.class_colours[c.labels[i]];
      ctx.strokeStyle = `rgb(${col[0]},${col[1]},${col[2]})`;
      ctx.lineWidth = 1;
      ctx.strokeRect(x0 + x1 + 0.5, y1 + 0.5, x2 - x1, y2 - y1);
      const tag = `${p.class_names[c.labels[i]]} ${c.scores[i].toFixed(2)}`;
      const tw = ctx.measureText(tag).width + 4, ty = Math.max(0, y1 - 13);
      ctx.fillStyle = `rgb(${col[0]},${col[1]},${col[2]})`;
      ctx.fillRect(x0 + Math.min(x1, p.w * s - tw), ty, tw, 13);
      ctx.fillStyle = "#000000";
      ctx.fillText(tag, x0 + Math.min(x1, p.w * s - tw) + 2, ty + 10);
    });
    const cell = model.get("cell") || [];
    if (cell.length === 2) {
      ctx.fillStyle = "#000000";
      ctx.beginPath();
      ctx.arc(x0 + (cell[1] + 0.5) * s, (cell[0] + 0.5) * s, 4, 0, 2 * Math.PI);
      ctx.fill();
    }
    const tw = ctx.measureText(title).width + 6;
    ctx.fillStyle = "#000000";
    ctx.fillRect(x0 + 2, p.h * s - 15, tw, 14);
    ctx.fillStyle = "#ffffff";
    ctx.fillText(title, x0 + 5, p.h * s - 4);
  }

  function drawMaps(ctx, y0, side) {
    // the class score per cell of each shown level: the chosen class, or the best class of the cell
    const lvl = model.get("level"), cls = model.get("cls");
    const levels = lvl > 0 ? [p.levels[lvl - 1]] : p.levels;
    const t = levels.length === 1 ? side : Math.floor(side / 2);
    levels.slice(0, 4).forEach((lv, j) => {
      const m = p.maps[lv], bytes = p.mapBytes[lv], k = cls > 0 ? cls - 1 : p.class_names.length;
      const tile = document.createElement("canvas");
      tile.width = m.w; tile.height = m.h;
      const tctx = tile.getContext("2d"), img = tctx.createImageData(m.w, m.h);
      for (let q = 0; q < m.w * m.h; q++) {
        const v = bytes[k * m.w * m.h + q];
        img.data[4 * q] = lut[3 * v]; img.data[4 * q + 1] = lut[3 * v + 1]; img.data[4 * q + 2] = lut[3 * v + 2];
        img.data[4 * q + 3] = 255;
      }
      tctx.putImageData(img, 0, 0);
      const x = (j % 2) * t, y = y0 + Math.floor(j / 2) * t;
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(tile, x, y, t, t);
      ctx.fillStyle = "#ffffff";
      ctx.font = "11px sans-serif";
      ctx.fillText(`${lv} ${m.h}x${m.w}`, x + 3, y + 12);
    });
  }

  function draw() {
    const s = p.scale, pw = p.w * s, ph = p.h * s, gap = 6;
    canvas.width = 2 * pw + gap;
    canvas.height = 2 * ph + gap;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const base = document.createElement("canvas");
    base.width = p.w; base.height = p.h;
    base.getContext("2d").putImageData(basePixels(base.getContext("2d")), 0, 0);
    const [before, after] = chosen();
    [0, pw + gap].forEach((x0) => {
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(base, x0, 0, pw, ph);
    });
    drawBoxes(ctx, 0, before, fmt("before NMS: {n}", { n: before.length }));
    drawBoxes(ctx, pw + gap, after, fmt("after NMS: {n}", { n: after.length }));
    drawMaps(ctx, ph + gap, ph);
    ctx.font = "11px sans-serif";                                  // the class colours, then the score scale
    let x = pw + gap + 4;
    p.class_names.forEach((n, i) => {
      const col = p.class_colours[i];
      ctx.fillStyle = `rgb(${col[0]},${col[1]},${col[2]})`;
      ctx.fillRect(x, ph + gap + 6, 10, 10);
      ctx.fillStyle = "#222222";
      ctx.fillText(n, x + 14, ph + gap + 15);
      x += 20 + ctx.measureText(n).width;
    });
    for (let v = 0; v < 256; v++) {
      ctx.fillStyle = `rgb(${lut[3 * v]},${lut[3 * v + 1]},${lut[3 * v + 2]})`;
      ctx.fillRect(pw + gap + 4 + Math.floor(v * (pw - 8) / 256), ph + gap + 26, Math.ceil((pw - 8) / 256), 10);
    }
    ctx.fillStyle = "#222222";
    ctx.fillText(`0 — ${text.score_bar || "class score"} — 1`, pw + gap + 4, ph + gap + 50);
    canvas.setAttribute("aria-label", `${p.alt || ""} ${fmt("before NMS: {n}", { n: before.length })}; ` +
                        fmt("after NMS: {n}", { n: after.length }));
    root.dataset.before = String(before.length);
    root.dataset.after = String(after.length);
    root.dataset.drawn = String(Number(root.dataset.drawn || 0) + 1);
  }

  canvas.addEventListener("click", (ev) => {
    // a click picks an image cell: the kernel lists its scores (the same place as on the Python picture)
    const r = canvas.getBoundingClientRect();
    const x = (ev.clientX - r.left) * canvas.width / r.width, y = (ev.clientY - r.top) * canvas.height / r.height;
    model.set("clicked", [x, y, Date.now()]);
    model.save_changes();
  });
  model.on("change:payload", () => { load(); draw(); });
  ["score", "iou", "level", "cls", "opacity", "cell"].forEach((n) => model.on("change:" + n, draw));
  draw();
  return () => {};
}

// An explorer whose pictures Python draws (a network's tree, a receptive field, a neck's wiring, a table):
// every combination of its controls the kernel has drawn is kept here, keyed by the controls' values, and a
// move to one of them swaps it in.  In JupyterLab a new combination is drawn by the kernel once and arrives
// as a message; on the offline site the controls offer the combinations made in advance, and a move to one
// that was not made shows the nearest one that was, the other controls following it.
function courseFrameKey(values) {
  return JSON.stringify(values.map((v) => (typeof v === "number" && !Number.isInteger(v) ? Number(v.toFixed(6)) : v)));
}

function courseFramesRender(model, el, standalone) {
  let p, frames, images, axes;
  const { root, bar, canvas } = courseFrame(el);
  canvas.remove();
  const body = document.createElement("div");
  body.className = "cl-frames";
  root.appendChild(body);
  const info = document.createElement("div");
  info.className = "cl-info";
  if (standalone) root.insertBefore(info, body);
  const names = ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"];
  const decoded = {};

  function picture(id) {
    // each picture is decoded once; a frame is drawn again when one of its pictures arrives
    if (!decoded[id]) {
      const im = new Image();
      im.onload = () => draw();
      im.src = images[id];
      decoded[id] = im;
    }
    return decoded[id];
  }
  function load() {
    p = model.get("payload") || {};
    frames = Object.assign({}, p.frames || {});
    images = Object.assign({}, p.images || {});
    axes = p.axes || [];
    Object.keys(decoded).forEach((k) => delete decoded[k]);
  }
  load();
  const values = () => axes.map((a, i) => model.get(names[i]));

  // the site's controls: each one offers the values some frame was made with
  const inputs = [];
  function offered(i) {
    const seen = new Set(Object.keys(frames).map((k) => courseFrameKey([JSON.parse(k)[i]])));
    return axes[i].values.filter((v) => seen.has(courseFrameKey([v])));
  }
  function send(name, value) { model.set(name, value); model.save_changes(); }
  if (standalone) {
    axes.forEach((a, i) => {
      const choices = offered(i);
      if (choices.length < 2) return;
      const label = document.createElement("label");
      label.textContent = a.name + " ";
      let input, shown = null;
      if (a.kind === "checkbox") {
        input = document.createElement("input");
        input.type = "checkbox";
        input.addEventListener("change", () => send(names[i], input.checked));
        input.sync = () => { input.checked = !!model.get(names[i]); };
      } else if (a.kind === "slider") {
        input = document.createElement("input");
        input.type = "range";
        input.min = "0";
        input.max = String(choices.length - 1);
        input.step = "1";
        shown = document.createElement("span");
        input.addEventListener("input", () => send(names[i], choices[Number(input.value)]));
        input.sync = () => {
          const v = model.get(names[i]);
          const at = choices.findIndex((c) => courseFrameKey([c]) === courseFrameKey([v]));
          input.value = String(Math.max(0, at));
          shown.textContent = " " + String(v);
        };
      } else {
        input = document.createElement("select");
        choices.forEach((c) => {
          const o = document.createElement("option");
          o.value = String(a.values.indexOf(c));
          o.textContent = a.labels[a.values.indexOf(c)];
          input.appendChild(o);
        });
        input.addEventListener("change", () => send(names[i], a.values[Number(input.value)]));
        input.sync = () => { input.value = String(a.values.findIndex((c) => courseFrameKey([c]) === courseFrameKey([model.get(names[i])]))); };
      }
      input.setAttribute("aria-label", a.name);
      label.appendChild(input);
      if (shown) label.appendChild(shown);
      bar.appendChild(label);
      inputs.push(input);
    });
    if (p.blend) {
      const label = document.createElement("label"), input = document.createElement("input");
      label.textContent = (p.text.opacity || "opacity") + " ";
      input.type = "range"; input.min = "0"; input.max = "1"; input.step = "0.05";
      input.setAttribute("aria-label", p.text.opacity || "opacity");
      input.addEventListener("input", () => send("opacity", Number(input.value)));
      input.sync = () => { input.value = String(model.get("opacity")); };
      label.appendChild(input);
      bar.appendChild(label);
      inputs.push(input);
    }
  }

  function nearest(want, moved) {
    // the made frame closest to what the controls ask for, keeping the control just moved where it is (in
    // JupyterLab only the controls the explorer moves itself may differ: the kernel is about to move them)
    let best = null, bestd = Infinity;
    Object.keys(frames).forEach((k) => {
      const v = JSON.parse(k);
      if (moved >= 0 && courseFrameKey([v[moved]]) !== courseFrameKey([want[moved]])) return;
      if (!standalone && v.some((x, i) => !axes[i].derived && courseFrameKey([x]) !== courseFrameKey([want[i]]))) return;
      const d = v.reduce((s, x, i) => s + (courseFrameKey([x]) === courseFrameKey([want[i]]) ? 0 : 1), 0);
      if (d < bestd) { best = v; bestd = d; }
    });
    return best;
  }

  let moved = -1;
  function draw() {
    let want = values(), frame = frames[courseFrameKey(want)];
    if (!frame) {
      const near = nearest(want, moved);
      if (near) {
        if (standalone) near.forEach((v, i) => { model.set(names[i], v, true); });   // the controls follow
        want = near;
        frame = frames[courseFrameKey(want)];
      }
    }
    root.classList.toggle("cl-pending", !frame);
    body.style.opacity = frame ? "" : "0.6";                    // waiting for the kernel's picture
    inputs.forEach((input) => input.sync());
    if (!frame) return;                                  // the kernel is drawing it: the old picture stays
    const a = Math.max(0, Math.min(1, Number(model.get("opacity"))));
    while (body.children.length > frame.parts.length) body.lastChild.remove();
    frame.parts.forEach((part, j) => {
      let node = body.children[j];
      const kind = part.html !== undefined ? "DIV" : "CANVAS";
      if (!node || node.tagName !== kind) {
        const fresh = document.createElement(kind.toLowerCase());
        fresh.style.display = "block";                     // the parts stand top to bottom, as in the notebook
        if (node) body.replaceChild(fresh, node); else body.appendChild(fresh);
        node = fresh;
        if (j === 0 && kind === "CANVAS" && !standalone) {
          // a click on the first picture picks a cell there: the kernel draws it (as on the Python picture)
          node.addEventListener("click", (ev) => {
            const r = node.getBoundingClientRect();
            model.set("clicked", [(ev.clientX - r.left) * node.width / r.width,
                                  (ev.clientY - r.top) * node.height / r.height, Date.now()]);
            model.save_changes();
          });
        }
      }
      if (kind === "DIV") {
        if (node.innerHTML !== part.html) node.innerHTML = part.html;
        return;
      }
      const base = picture(part.img), over = part.over ? picture(part.over) : null;
      if (!base.complete || !base.naturalWidth || (over && (!over.complete || !over.naturalWidth))) return;
      if (node.width !== base.naturalWidth) node.width = base.naturalWidth;
      if (node.height !== base.naturalHeight) node.height = base.naturalHeight;
      node.setAttribute("role", "img");
      node.setAttribute("aria-label", p.alt || "");
      node.style.maxWidth = "100%";
      const ctx = node.getContext("2d");
      ctx.globalAlpha = 1;
      ctx.drawImage(base, 0, 0);
      if (over) { ctx.globalAlpha = a; ctx.drawImage(over, 0, 0); ctx.globalAlpha = 1; }
    });
    if (standalone) info.innerHTML = frame.info || "";
    root.dataset.frame = courseFrameKey(want);
    root.dataset.drawn = String(Number(root.dataset.drawn || 0) + 1);
  }

  model.on("msg:custom", (msg) => {
    // a combination the kernel has just drawn: kept, and shown if the controls still ask for it
    if (!msg || msg.frame === undefined) return;
    Object.assign(images, msg.images || {});
    frames[msg.frame] = msg.data;
    if (msg.axes) axes = msg.axes;
    if (msg.frame === courseFrameKey(values())) draw();
  });
  function ask() {
    // shown before its pictures were made (the explorer's widget put in a box): the kernel makes them now
    if (!standalone && !frames[courseFrameKey(values())]) model.send({ ask: "frames" });
  }
  model.on("change:payload", () => { load(); draw(); ask(); });
  names.forEach((n, i) => model.on("change:" + n, () => { moved = i; draw(); }));
  model.on("change:opacity", draw);
  draw();
  ask();
  return () => {};
}

// The offline site: every <div class="cl-snapshot"> holds {"payload": ..., "state": ...} as JSON.
function courseExplorerBoot(doc) {
  doc.querySelectorAll(".cl-snapshot").forEach((host) => {
    const data = JSON.parse(host.querySelector("script[type='application/json']").textContent);
    const state = Object.assign({ payload: data.payload }, data.state);
    const handlers = {};
    const model = {
      get: (k) => state[k],
      set: (k, v, quiet) => { state[k] = v; if (!quiet) (handlers["change:" + k] || []).forEach((f) => f()); },
      on: (ev, f) => { (handlers[ev] = handlers[ev] || []).push(f); },
      save_changes: () => {},
    };
    const render = { boxes: courseBoxesRender, frames: courseFramesRender }[data.payload.kind] || courseExplorerRender;
    render(model, host, true);
  });
}
