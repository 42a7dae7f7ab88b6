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
  const text = payload.text || {};
  const root = document.createElement("div");
  root.className = "cl-explorer cl-view";
  const bar = document.createElement("div");
  bar.className = "cl-controls";
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  const caption = document.createElement("div");
  caption.className = "cl-caption";

  function control(name, make) {
    // a control of the site's own (in JupyterLab the ipywidgets controls, jslinked, play this part)
    if (!standalone || !(payload.controls || {})[name]) return;
    const spec = payload.controls[name];
    const label = document.createElement("label");
    label.textContent = (text[name] || name) + " ";
    const input = make(spec);
    input.setAttribute("aria-label", text[name] || name);
    label.appendChild(input);
    bar.appendChild(label);
    model.on("change:" + name, () => {
      const v = model.get(name);
      if (input.type === "checkbox") input.checked = !!v;
      else input.value = String(v);
    });
  }
  function slider(name) {
    control(name, (spec) => {
      const input = document.createElement("input");
      input.type = "range";
      input.min = String(spec.min);
      input.max = String(spec.max);
      input.step = String(spec.step || 1);
      input.value = String(model.get(name));
      input.addEventListener("input", () => { model.set(name, Number(input.value)); model.save_changes(); });
      return input;
    });
  }
  control("group", () => {
    const select = document.createElement("select");
    groups.forEach((g, i) => {
      const o = document.createElement("option");
      o.value = String(i);
      o.textContent = g.name;
      select.appendChild(o);
    });
    select.value = String(model.get("group"));
    select.addEventListener("change", () => { model.set("group", Number(select.value)); model.save_changes(); });
    return select;
  });
  control("mode", (spec) => {
    const select = document.createElement("select");
    (spec.options || []).forEach((label, i) => {
      const o = document.createElement("option");
      o.value = String(i);
      o.textContent = label;
      select.appendChild(o);
    });
    select.value = String(model.get("mode"));
    select.addEventListener("change", () => { model.set("mode", Number(select.value)); model.save_changes(); });
    return select;
  });
  slider("k");
  slider("channel");
  control("overlay", () => {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = !!model.get("overlay");
    box.addEventListener("change", () => { model.set("overlay", box.checked); model.save_changes(); });
    return box;
  });
  slider("opacity");

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

  root.appendChild(bar);
  root.appendChild(canvas);
  root.appendChild(caption);
  el.appendChild(root);
  model.on("change:payload", () => { load(); draw(); });
  ["group", "k", "channel", "mode", "overlay", "opacity"].forEach((n) => model.on("change:" + n, draw));
  draw();
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
      set: (k, v) => { state[k] = v; (handlers["change:" + k] || []).forEach((f) => f()); },
      on: (ev, f) => { (handlers[ev] = handlers[ev] || []).push(f); },
      save_changes: () => {},
    };
    courseExplorerRender(model, host, true);
  });
}
