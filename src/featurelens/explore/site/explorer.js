/* featurelens explorer: plain JavaScript, no build step, no network but the site's own files.
 *
 * Data arrive as <script> files calling FL.site(), FL.image() and FL.atlas() (Chromium refuses
 * fetch() of file:// URLs). Feature maps are gray pixels in sheets (one per image); the page draws
 * a tile onto a canvas and colours it with an SVG colour-map filter, so it never reads pixels back
 * (a canvas holding file:// images may not be read). The live server sets FL.live and answers
 * uploads with the same records.
 */
"use strict";

const FL = (function () {
  const state = {
    site: null, live: null, records: {}, atlases: {}, loads: {}, images: {},
    current: null, method: null, layer: null, channel: null, filtered: [], uploads: [],
    order: "channel", scale: "each", uploadCount: 0,
  };
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "style") Object.assign(node.style, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of [].concat(children || [])) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  const fmt = (v, digits) => (v === null || v === undefined || Number.isNaN(v)) ? "–" : Number(v).toPrecision(digits || 3);
  const bytes = (n) => n >= 1048576 ? (n / 1048576).toFixed(n >= 10485760 ? 0 : 1) + " MB" : Math.round(n / 1024) + " KB";
  const pct = (v, digits) => (100 * v).toFixed(digits === undefined ? 1 : digits) + "%";
  const className = (i) => (i === null || i === undefined || i < 0) ? "unknown" : state.site.class_names[i];

  /* ---------- loading ---------- */

  function loadScript(src) {
    if (!state.loads[src]) {
      state.loads[src] = new Promise((resolve, reject) => {
        const script = el("script", { src: src });
        script.onload = () => resolve();
        script.onerror = () => reject(new Error("could not load " + src));
        document.head.append(script);
      });
    }
    return state.loads[src];
  }

  function loadImage(src) {
    if (!state.images[src]) {
      state.images[src] = new Promise((resolve, reject) => {
        const image = new Image();
        image.onload = () => resolve(image);
        image.onerror = () => reject(new Error("could not load " + src));
        image.src = src;
      });
    }
    return state.images[src];
  }

  async function record(id) {
    if (!state.records[id]) await loadScript("data/images/" + id + ".js");
    const found = state.records[id];
    if (!found) throw new Error("no data for image " + id);
    return found;
  }

  async function atlasOf(layer) {
    const entry = state.site.atlas.find((a) => a.layer === layer);
    if (!entry) return null;
    if (!state.atlases[layer]) await loadScript(entry.file);
    return state.atlases[layer] || null;
  }

  /* ---------- drawing ---------- */

  function colourFilters() {
    const defs = $("colour-filters");
    const ns = "http://www.w3.org/2000/svg";
    for (const [name, tables] of Object.entries(state.site.colour_maps)) {
      const filter = document.createElementNS(ns, "filter");
      filter.setAttribute("id", "cm-" + name);
      filter.setAttribute("color-interpolation-filters", "sRGB");
      const transfer = document.createElementNS(ns, "feComponentTransfer");
      ["R", "G", "B"].forEach((channel, k) => {
        const func = document.createElementNS(ns, "feFunc" + channel);
        func.setAttribute("type", "table");
        func.setAttribute("tableValues", tables[k].join(" "));
        transfer.append(func);
      });
      filter.append(transfer);
      defs.append(filter);
    }
  }

  function rgbOf(name, v) {
    const tables = state.site.colour_maps[name];
    const n = tables[0].length - 1;
    const x = Math.min(Math.max(v, 0), 1) * n;
    const i = Math.min(Math.floor(x), n - 1);
    const t = x - i;
    const c = tables.map((row) => Math.round(255 * (row[i] * (1 - t) + row[i + 1] * t)));
    return "rgb(" + c.join(",") + ")";
  }

  function drawTile(canvas, image, block, index) {
    const col = index % block.cols;
    const row = Math.floor(index / block.cols);
    canvas.width = block.w;
    canvas.height = block.h;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(image, col * block.w, (block.y || 0) + row * block.h, block.w, block.h, 0, 0, block.w, block.h);
  }

  function mapCanvas(image, block, index, extraClass) {
    const canvas = el("canvas", { class: "map " + (extraClass || "") });
    drawTile(canvas, image, block, index);
    return canvas;
  }

  async function drawInput(canvas, id) {
    const site = state.site;
    const upload = state.uploads.find((u) => u.id === id);
    if (upload) {
      const image = await loadImage(upload.thumb);
      drawTile(canvas, image, { y: 0, w: image.width, h: image.height, cols: 1 }, 0);
      return;
    }
    const thumbs = site.sample.thumbs;
    const position = site.sample.indices.indexOf(Number(id));
    drawTile(canvas, await loadImage(thumbs.file), { y: 0, w: thumbs.w, h: thumbs.h, cols: thumbs.cols }, position);
  }

  /* ---------- the picker ---------- */

  function sampleItems() {
    const s = state.site.sample;
    const items = s.indices.map((index, k) => ({
      id: String(index), label: s.labels[k], predicted: s.predicted[k], confidence: s.confidence[k], position: k,
    }));
    return state.uploads.map((u) => ({ id: u.id, label: -1, predicted: u.record.predicted,
      confidence: u.record.probabilities[u.record.predicted], upload: u })).concat(items);
  }

  function fillFilters() {
    for (const id of ["filter-true", "filter-pred"]) {
      const select = $(id);
      select.append(el("option", { value: "", text: "all" }));
      state.site.class_names.forEach((name, i) => select.append(el("option", { value: String(i), text: name })));
      select.addEventListener("change", renderThumbs);
    }
    $("filter-answer").addEventListener("change", renderThumbs);
  }

  function thumb(item) {
    const s = state.site.sample.thumbs;
    const size = 44;
    const style = item.upload
      ? { backgroundImage: "url(" + item.upload.thumb + ")", backgroundSize: size + "px " + size + "px" }
      : {
        backgroundImage: "url(" + s.file + ")",
        backgroundPosition: -(item.position % s.cols) * size + "px " + -Math.floor(item.position / s.cols) * size + "px",
        backgroundSize: s.cols * size + "px auto",
      };
    const right = item.label < 0 ? "upload" : (item.label === item.predicted ? "right" : "wrong");
    const title = item.upload ? "your image: predicted " + className(item.predicted)
      : "#" + item.id + " " + className(item.label) + (right === "right" ? " (right)" : " → predicted " + className(item.predicted));
    return el("button", {
      type: "button", class: "thumb " + right + (item.id === state.current ? " selected" : ""), style: style,
      title: title, "aria-label": title, role: "option", "data-id": item.id,
      "aria-selected": item.id === state.current ? "true" : "false", onclick: () => select(item.id),
    });
  }

  function renderThumbs() {
    const t = $("filter-true").value, p = $("filter-pred").value, a = $("filter-answer").value;
    state.filtered = sampleItems().filter((item) =>
      (t === "" || item.label === Number(t)) && (p === "" || item.predicted === Number(p)) &&
      (a === "" || (a === "right") === (item.label === item.predicted)));
    const box = $("thumbs");
    box.replaceChildren(...state.filtered.map(thumb));
    const total = state.site.sample.indices.length + state.uploads.length;
    $("picker-count").textContent = state.filtered.length + " of " + total + " images";
  }

  function markSelected() {
    for (const node of document.querySelectorAll(".thumb")) {
      const on = node.dataset.id === state.current;
      node.classList.toggle("selected", on);
      node.setAttribute("aria-selected", on ? "true" : "false");
      if (on) node.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
  }

  /* ---------- the chosen image ---------- */

  async function select(id, options) {
    state.current = String(id);
    markSelected();
    let rec;
    try {
      rec = await record(state.current);
    } catch (error) {
      showFatal(error.message);
      return;
    }
    if (state.current !== String(id)) return;
    const sheet = await loadImage(rec.sheet);
    if (state.current !== String(id)) return;
    await drawInput($("input-canvas"), state.current);
    renderPrediction(rec);
    await renderExplanation(rec, sheet);
    renderStrip(rec, sheet);
    if (state.layer) renderLayer(rec, sheet);
    if (state.channel !== null && state.layer && !(options && options.keepChannelClosed)) await renderChannel();
    saveHash();
    document.body.dataset.ready = state.current;
  }

  function renderPrediction(rec) {
    const label = rec.label;
    const upload = label === undefined || label < 0;
    const right = !upload && label === rec.predicted;
    $("pred-title").textContent = className(rec.predicted) + " " + pct(rec.probabilities[rec.predicted]);
    $("pred-title").className = upload ? "" : (right ? "right-text" : "wrong-text");
    $("pred-sub").textContent = upload ? "your image (resized to " + state.site.model.input_shape.slice(0, 2).join("×") + ")"
      : "true class: " + className(label) + (right ? " — right" : " — wrong");
    $("input-caption").textContent = upload ? "uploaded image" : "test image #" + rec.index;
    const order = rec.probabilities.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 5);
    $("top5").replaceChildren(...order.map(([p, i]) => el("li", { class: i === label ? "true-class" : "" , "data-class": className(i), "data-probability": String(p) }, [
      el("span", { class: "bar-label", text: className(i) }),
      el("span", { class: "bar" }, el("span", { class: "fill" + (i === rec.predicted ? " top" : ""), style: { width: (100 * p).toFixed(1) + "%" } })),
      el("span", { class: "bar-value", text: pct(p) }),
    ])));
  }

  const METHOD_NOTES = {
    gradcam: "where the last 8×8-or-larger conv layer's evidence for the class lies",
    "gradcam++": "Grad-CAM weighted towards several instances of the class",
    layercam: "per-position weights of the CAM layer: finer than Grad-CAM",
    scorecam: "masks of the CAM layer scored by the model itself (no gradients)",
    saliency: "how much a small change of each pixel moves the class score",
    smoothgrad: "saliency averaged over noisy copies of the image: less speckle",
    integrated_gradients: "each pixel's share of the score, from a mean-colour image (red for, blue against)",
    occlusion: "how much the score drops when a patch is covered",
  };

  async function renderExplanation(rec, sheet) {
    const methods = state.site.methods;
    const box = $("methods");
    if (!methods.length) {
      box.replaceChildren(el("span", { class: "muted", text: "no explanation maps (" + (state.site.notes.join("; ") || "none asked for") + ")" }));
      return;
    }
    if (!state.method || !methods.some((m) => m.name === state.method)) state.method = methods[0].name;
    box.replaceChildren(...methods.map((m) => el("button", {
      type: "button", role: "tab", class: "seg" + (m.name === state.method ? " on" : ""), "data-method": m.name,
      "aria-selected": m.name === state.method ? "true" : "false", text: m.label,
      onclick: () => { state.method = m.name; select(state.current); },
    })));
    const k = methods.findIndex((m) => m.name === state.method);
    const info = rec.explanations[state.method];
    const block = state.site.sheet.blocks.explanations;
    const colour = info.signed ? "signed" : "heat";
    await drawInput($("explain-image"), state.current);
    for (const id of ["explain-map", "explain-alone"]) {
      const canvas = $(id);
      drawTile(canvas, sheet, block, k);
      canvas.style.filter = "url(#cm-" + colour + ")";
    }
    $("explain-caption").textContent = methods[k].label + " for “" + className(rec.predicted) + "”: " +
      (METHOD_NOTES[state.method] || "") + ". Largest |value| " + fmt(info.peak) + ".";
  }

  /* ---------- the strip and a layer ---------- */

  function strongest(entry, count) {
    const means = entry.mean;
    return means.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, count).map((x) => x[1]);
  }

  function shape(layer) { return layer.shape.join("×"); }

  function renderStrip(rec, sheet) {
    const site = state.site;
    const cards = [el("div", { class: "card input-card", role: "listitem" }, [
      el("div", { class: "card-name", text: "input" }),
      el("div", { class: "card-shape muted", text: site.model.input_shape.join("×") }),
      (() => { const c = el("canvas", { class: "pixelated preview-input" }); drawInput(c, state.current); return c; })(),
    ])];
    site.layers.forEach((layer, n) => {
      const entry = rec.layers[layer.name];
      let preview, note = "";
      if (layer.shape.length === 3) {
        const top = strongest(entry, 4);
        preview = el("div", { class: "mini" }, top.map((c) => mapCanvas(sheet, site.sheet.blocks[layer.name], c, "viridis")));
        note = "most active: " + top[0];
      } else if (layer.kind === "softmax" || n === site.layers.length - 1) {
        preview = headBars(entry.values, 4);
        note = className(rec.predicted);
      } else {
        preview = unitStrip(entry.values);
        const best = entry.values.indexOf(Math.max(...entry.values));
        note = "most active: " + best;
      }
      cards.push(el("button", {
        type: "button", role: "listitem", class: "card" + (state.layer === layer.name ? " on" : ""), "data-layer": layer.name,
        title: layer.name + " (" + layer.kind + ", " + shape(layer) + ")", onclick: () => openLayer(layer.name),
      }, [el("div", { class: "card-name", text: layer.name }), el("div", { class: "card-shape muted", text: shape(layer) }),
        preview, el("div", { class: "card-note muted", "data-strongest": note, text: note })]));
    });
    $("strip").replaceChildren(...cards);
  }

  function headBars(values, count) {
    const order = values.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, count);
    return el("div", { class: "head-bars" }, order.map(([v, i]) => el("div", { class: "head-bar" }, [
      el("span", { class: "fill", style: { width: Math.max(2, 100 * v).toFixed(0) + "%" } }),
      el("span", { class: "head-label", text: className(i) }),
    ])));
  }

  function unitStrip(values) {
    const top = Math.max(...values.map(Math.abs)) || 1;
    const cols = Math.min(values.length, 16);
    const canvas = el("canvas", { class: "units pixelated" });
    canvas.width = cols;
    canvas.height = Math.ceil(values.length / cols);
    const ctx = canvas.getContext("2d");
    values.forEach((v, i) => { ctx.fillStyle = rgbOf("viridis", Math.abs(v) / top); ctx.fillRect(i % cols, Math.floor(i / cols), 1, 1); });
    return canvas;
  }

  function layerInfo(name) { return state.site.layers.find((l) => l.name === name); }

  async function openLayer(name) {
    state.layer = name;
    state.channel = null;
    closeChannelPanel();
    const rec = await record(state.current);
    const sheet = await loadImage(rec.sheet);
    for (const card of document.querySelectorAll(".card[data-layer]")) card.classList.toggle("on", card.dataset.layer === name);
    renderLayer(rec, sheet);
    $("layer-panel").scrollIntoView({ block: "nearest" });
    saveHash();
  }

  function renderLayer(rec, sheet) {
    const layer = layerInfo(state.layer);
    const panel = $("layer-panel");
    if (!layer) { panel.hidden = true; return; }
    panel.hidden = false;
    const entry = rec.layers[layer.name];
    const spatial = layer.shape.length === 3;
    $("layer-title").textContent = layer.name + " — " + layer.kind + ", " + shape(layer) +
      (spatial ? " (" + layer.shape[2] + " channels)" : "");
    $("layer-order").disabled = !spatial;
    $("layer-scale").disabled = !spatial || !!entry.lo;
    const box = $("channels");
    if (!spatial) {
      const values = entry.values;
      const top = Math.max(...values.map(Math.abs)) || 1;
      const head = layer.kind === "softmax" || layer === state.site.layers[state.site.layers.length - 1];
      $("layer-note").textContent = head ? "the model's output for each class" : "each unit's value on this image (colour: value / largest)";
      box.replaceChildren(...values.map((v, i) => el("div", { class: "unit", role: "listitem", title: (head ? className(i) : "unit " + i) + ": " + fmt(v, 4) }, [
        el("span", { class: "swatch", style: { background: rgbOf("viridis", Math.abs(v) / top) } }),
        el("span", { class: "unit-label", text: (head ? className(i) : "#" + i) + " " + fmt(v, 3) }),
      ])));
      return;
    }
    const block = state.site.sheet.blocks[layer.name];
    const order = state.order === "activation" ? strongest(entry, layer.shape[2]) : [...Array(layer.shape[2]).keys()];
    const peak = Math.max(...entry.hi) || 1;
    const best = strongest(entry, 1)[0];
    $("layer-note").textContent = "Each tile is one channel's map on this image" +
      (state.scale === "layer" ? ", all on one scale (largest value " + fmt(peak) + ")" : ", scaled to its own range") +
      ". Most active channel (largest mean): " + best + ". Click a channel for what it detects.";
    box.replaceChildren(...order.map((c) => {
      const canvas = mapCanvas(sheet, block, c, "viridis");
      if (state.scale === "layer") canvas.style.filter = "brightness(" + (entry.hi[c] / peak).toFixed(4) + ") url(#cm-viridis)";
      return el("button", { type: "button", role: "listitem", class: "channel" + (c === best ? " best" : ""), "data-channel": String(c),
        title: "channel " + c + ": mean " + fmt(entry.mean[c]) + ", max " + fmt(entry.hi[c]), onclick: () => openChannel(c) },
      [canvas, el("span", { class: "channel-label", text: "#" + c })]);
    }));
  }

  /* ---------- a channel ---------- */

  async function openChannel(channel) {
    state.channel = channel;
    await renderChannel();
    saveHash();
  }

  function closeChannelPanel() {
    $("channel-panel").hidden = true;
    document.body.classList.remove("panel-open");
  }

  function sheetTile(image, spec, index) {
    return mapCanvas(image, { y: 0, w: spec.w, h: spec.h, cols: spec.cols }, index, "pixelated");
  }

  async function renderChannel() {
    const layer = layerInfo(state.layer);
    if (!layer || layer.shape.length !== 3) return;
    const c = state.channel;
    const rec = await record(state.current);
    const sheet = await loadImage(rec.sheet);
    const entry = rec.layers[layer.name];
    const block = state.site.sheet.blocks[layer.name];
    $("channel-title").textContent = layer.name + " · channel " + c;
    const rank = strongest(entry, layer.shape[2]).indexOf(c) + 1;
    const input = el("canvas", { class: "pixelated" });
    await drawInput(input, state.current);
    const over = mapCanvas(sheet, block, c, "smooth over");
    over.style.filter = "url(#cm-viridis)";
    const here = el("section", { class: "here" }, [
      el("h4", { text: "On this image" }),
      el("div", { class: "here-row" }, [
        el("figure", {}, [mapCanvas(sheet, block, c, "pixelated enlarged viridis"), el("figcaption", { text: layer.shape[0] + "×" + layer.shape[1] + " map" })]),
        el("figure", {}, [el("div", { class: "overlay enlarged" }, [input, over]), el("figcaption", { text: "over the image" })]),
      ]),
      el("p", { class: "stats-line" }, [
        "max ", el("strong", { "data-stat": "max", text: fmt(entry.hi[c]) }), " · mean ", el("strong", { "data-stat": "mean", text: fmt(entry.mean[c]) }),
        " · rank ", el("strong", { "data-stat": "rank", text: rank + " of " + layer.shape[2] }), " by mean activation",
      ]),
    ]);
    const body = $("channel-body");
    body.replaceChildren(here);
    $("channel-panel").hidden = false;
    document.body.classList.add("panel-open");
    $("channel-close").focus({ preventScroll: true });
    if (!layer.atlas) {
      body.append(el("p", { class: "muted", text: "No atlas entry: this layer's channels do not come from one conv layer." }));
      return;
    }
    const placeholder = el("p", { class: "muted", text: "Loading the atlas of " + layer.atlas + "…" });
    body.append(placeholder);
    const atlas = await atlasOf(layer.atlas);
    if (state.channel !== c || state.layer !== layer.name) return;
    placeholder.replaceWith(atlas ? await atlasSection(atlas, c, layer) : el("p", { class: "muted", text: "No atlas in this site." }));
    document.body.dataset.channelReady = layer.name + ":" + c;
  }

  async function atlasSection(atlas, c, layer) {
    const names = state.site.class_names;
    const parts = [el("h4", { text: "What channel " + c + " of " + atlas.layer + " detects" }),
      el("p", { class: "muted small", text: "Read at " + atlas.measured_at + " over " + atlas.images + " test images" +
        (atlas.field ? "; its units see " + atlas.field.size.join("×") + " pixels" : "") + "." })];
    const grid = el("div", { class: "atlas-grid" });
    if (atlas.sheets.vis) {
      const image = await loadImage(atlas.sheets.vis.file);
      grid.append(el("figure", { class: "vis" }, [sheetTile(image, atlas.sheets.vis, c),
        el("figcaption", { text: "feature visualization (" + atlas.steps + " steps)" })]));
    }
    if (atlas.sheets.kernels) {
      const image = await loadImage(atlas.sheets.kernels.file);
      const view = atlas.sheets.kernels.view === "rgb" ? "as colours" : "mean over inputs, blue − / red +";
      grid.append(el("figure", { class: "kernel" }, [sheetTile(image, atlas.sheets.kernels, c),
        el("figcaption", { text: "kernel " + atlas.sheets.kernels.h + "×" + atlas.sheets.kernels.w + " (" + view + ")" })]));
    }
    parts.push(grid);
    if (atlas.sheets.patches) {
      const image = await loadImage(atlas.sheets.patches.file);
      const spec = atlas.sheets.patches;
      const ex = atlas.examples;
      const tiles = [];
      for (let j = 0; j < spec.cols; j++) {
        if (ex.indices[c][j] < 0) continue;
        tiles.push(el("figure", { class: "patch" }, [sheetTile(image, spec, c * spec.cols + j),
          el("figcaption", { text: names[ex.labels[c][j]] + " " + fmt(ex.values[c][j]), title: "test image #" + ex.indices[c][j] })]));
      }
      parts.push(el("h5", { text: "Top " + tiles.length + " test-image patches (largest activation)" }), el("div", { class: "patches" }, tiles));
    }
    const dead = atlas.never_active[c] >= 1;
    const stats = el("p", { class: "stats-line" }, [
      "mean activation ", el("strong", { text: fmt(atlas.mean[c]) }),
      " · never active on ", el("strong", { text: pct(atlas.never_active[c]) }), " of images",
      atlas.selectivity ? " · class selectivity " : "", atlas.selectivity ? el("strong", { text: fmt(atlas.selectivity[c], 2) }) : "",
      dead ? el("strong", { class: "wrong-text", text: " · dead channel" }) : "",
    ]);
    parts.push(stats);
    if (atlas.class_mean) {
      const values = atlas.class_mean[c];
      const top = Math.max(...values.map(Math.abs)) || 1;
      parts.push(el("h5", { text: "Mean activation per class" }), el("ol", { class: "bars compact" }, values.map((v, i) => el("li", {}, [
        el("span", { class: "bar-label", text: names[i] }),
        el("span", { class: "bar" }, el("span", { class: "fill", style: { width: Math.max(0, 100 * v / top).toFixed(1) + "%" } })),
        el("span", { class: "bar-value", text: fmt(v) }),
      ]))));
    }
    return el("section", { class: "atlas" }, parts);
  }

  function stepChannel(delta) {
    const layer = layerInfo(state.layer);
    if (!layer || state.channel === null) return;
    state.channel = (state.channel + delta + layer.shape[2]) % layer.shape[2];
    renderChannel();
    saveHash();
  }

  /* ---------- training and confusion ---------- */

  function lineChart(title, series, epochs, marks, percent) {
    const W = 420, H = 230, L = 46, R = 12, T = 26, B = 34;
    const all = series.flatMap((s) => s.values || []).filter((v) => v !== null);
    let lo = Math.min(...all), hi = Math.max(...all);
    if (percent) { lo = Math.max(0, lo - 0.05); hi = Math.min(1, hi + 0.05); }
    if (hi === lo) { hi = lo + 1; }
    const n = epochs.length;
    const x = (i) => L + (n > 1 ? (i / (n - 1)) * (W - L - R) : (W - L - R) / 2);
    const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", title);
    const add = (tag, attrs, text) => {
      const node = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      if (text !== undefined) node.textContent = text;
      svg.append(node);
      return node;
    };
    add("text", { x: L, y: 16, class: "chart-title" }, title);
    for (let k = 0; k <= 4; k++) {
      const v = lo + (k / 4) * (hi - lo);
      add("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" });
      add("text", { x: L - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, percent ? (100 * v).toFixed(0) + "%" : v.toFixed(2));
    }
    const every = Math.max(1, Math.ceil(n / 10));
    epochs.forEach((e, i) => { if (i % every === 0 || i === n - 1) add("text", { x: x(i), y: H - B + 16, class: "tick", "text-anchor": "middle" }, String(e)); });
    add("text", { x: (L + W - R) / 2, y: H - 4, class: "tick", "text-anchor": "middle" }, "epoch");
    for (const m of marks) {
      const i = epochs.indexOf(m.epoch);
      if (i >= 0) add("line", { x1: x(i), x2: x(i), y1: T, y2: H - B, class: m.kind });
    }
    series.forEach((s) => {
      if (!s.values) return;
      add("polyline", { points: s.values.map((v, i) => x(i) + "," + y(v)).join(" "), class: "series " + s.kind });
    });
    const legend = series.filter((s) => s.values);
    legend.forEach((s, k) => {
      add("line", { x1: W - R - 150 + k * 78, x2: W - R - 132 + k * 78, y1: 12, y2: 12, class: "series " + s.kind });
      add("text", { x: W - R - 128 + k * 78, y: 16, class: "tick" }, s.name);
    });
    return svg;
  }

  function renderHistory() {
    const h = state.site.history;
    const box = $("history");
    if (!h) { box.replaceChildren(el("p", { class: "muted", text: "This model folder has no training history." })); return; }
    const marks = [{ epoch: h.best_epoch, kind: "best" }].concat(h.lr_reductions.map((e) => ({ epoch: e, kind: "lr" })));
    box.replaceChildren(
      lineChart("loss", [{ name: "train", kind: "train", values: h.loss }, { name: "validation", kind: "val", values: h.val_loss }], h.epochs, marks, false),
      lineChart("accuracy", [{ name: "train", kind: "train", values: h.accuracy }, { name: "validation", kind: "val", values: h.val_accuracy }], h.epochs, marks, true),
      el("p", { class: "muted small", text: h.epochs.length + " epochs; best epoch " + (h.best_epoch || "–") + " (green line)" +
        (h.lr_reductions.length ? "; learning rate reduced after epochs " + h.lr_reductions.join(", ") + " (dotted)" : "") +
        "; stopped: " + h.stop_reason.replace("_", " ") + "." }),
    );
  }

  function renderConfusion() {
    const site = state.site;
    const m = site.evaluation.confusion;
    const names = site.class_names;
    const table = el("table", { class: "matrix" });
    const head = el("tr", {}, [el("th", { class: "corner", text: "true ↓ predicted →" })].concat(names.map((n) => el("th", { class: "col", title: n }, el("span", { text: n })))));
    table.append(el("thead", {}, head));
    const body = el("tbody");
    m.forEach((row, t) => {
      const total = row.reduce((a, b) => a + b, 0) || 1;
      body.append(el("tr", {}, [el("th", { class: "row", text: names[t] })].concat(row.map((count, p) => {
        const share = count / total;
        const style = { background: t === p ? "rgba(34,139,84," + (0.1 + 0.8 * share).toFixed(3) + ")" : "rgba(200,60,50," + Math.min(0.9, 2.5 * share).toFixed(3) + ")" };
        if (share > 0.45) style.color = "#fff";
        return el("td", {}, el("button", { type: "button", class: "cell", style: style, "data-true": String(t), "data-pred": String(p),
          title: names[t] + " predicted as " + names[p] + ": " + count + " (" + pct(share) + " of " + names[t] + ")",
          text: String(count), onclick: () => listCell(t, p) }));
      }))));
    });
    table.append(body);
    $("confusion").replaceChildren(el("div", { class: "matrix-wrap" }, table),
      el("p", { class: "muted small", text: "Rows: true class; columns: predicted; counts over " + site.evaluation.count +
        " test images (accuracy " + pct(site.evaluation.accuracy) + ")." }));
  }

  function listCell(t, p) {
    const names = state.site.class_names;
    const items = sampleItems().filter((item) => item.label === t && item.predicted === p);
    const count = state.site.evaluation.confusion[t][p];
    const list = $("cell-list");
    list.replaceChildren(el("h3", { text: names[t] + " predicted as " + names[p] }),
      el("p", { class: "muted", text: count + " test images; " + items.length + " of them in this sample" + (items.length ? " (click one to open it):" : ".") }),
      el("div", { class: "thumbs inline", "data-cell": t + "," + p }, items.map(thumb)));
    for (const node of list.querySelectorAll(".thumb")) {
      node.addEventListener("click", () => $("view-image").scrollIntoView({ block: "start" }));
    }
  }

  /* ---------- live uploads ---------- */

  function setupUpload() {
    const live = state.live;
    if (!live) return;
    $("upload").hidden = false;
    $("upload-limits").textContent = (live.types || []).join(", ").toUpperCase() + ", up to " + bytes(live.max_bytes);
    const input = $("upload-input");
    input.accept = (live.mime_types || []).join(",");
    input.addEventListener("change", () => { if (input.files[0]) upload(input.files[0]); input.value = ""; });
    const zone = $("drop-zone");
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]); });
  }

  async function upload(file) {
    const status = $("upload-status");
    status.className = "upload-status";
    if (file.size > state.live.max_bytes) {
      status.textContent = "Rejected: " + file.name + " is " + bytes(file.size) + ", over the limit of " + bytes(state.live.max_bytes) + ".";
      status.classList.add("error");
      return;
    }
    status.textContent = "Computing " + file.name + "…";
    let answer;
    try {
      const response = await fetch(state.live.upload, { method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream", "X-Filename": encodeURIComponent(file.name) } });
      answer = await response.json();
    } catch (error) {
      answer = { error: "the server did not answer (" + error.message + ")" };
    }
    if (answer.error) {
      status.textContent = "Rejected: " + answer.error;
      status.classList.add("error");
      return;
    }
    state.uploadCount += 1;
    const id = "upload-" + state.uploadCount;
    const rec = Object.assign(answer.record, { index: id, label: -1 });
    state.records[id] = rec;
    state.uploads.unshift({ id: id, record: rec, thumb: answer.thumb, name: file.name });
    status.textContent = file.name + ": " + className(rec.predicted) + " " + pct(rec.probabilities[rec.predicted]);
    status.classList.add("ok");
    renderThumbs();
    select(id);
  }

  /* ---------- keyboard, hash, start ---------- */

  function move(delta) {
    if (!state.filtered.length) return;
    const k = state.filtered.findIndex((item) => item.id === state.current);
    const next = state.filtered[(k + delta + state.filtered.length) % state.filtered.length];
    select(next.id);
  }

  function moveLayer(delta) {
    const layers = state.site.layers;
    const k = layers.findIndex((l) => l.name === state.layer);
    const next = k < 0 ? (delta > 0 ? 0 : layers.length - 1) : Math.min(Math.max(k + delta, 0), layers.length - 1);
    openLayer(layers[next].name);
  }

  function nextMethod() {
    const methods = state.site.methods;
    if (!methods.length) return;
    const k = methods.findIndex((m) => m.name === state.method);
    state.method = methods[(k + 1) % methods.length].name;
    select(state.current);
  }

  function onKey(event) {
    if (event.target.closest && event.target.closest("input, select, textarea")) return;
    if (event.metaKey || event.ctrlKey || event.altKey) return;
    const panelOpen = !$("channel-panel").hidden;
    const key = event.key;
    if (key === "Escape") {
      if (!$("help").hidden) $("help").hidden = true;
      else if (panelOpen) { closeChannelPanel(); state.channel = null; saveHash(); }
      else if (state.layer) { state.layer = null; $("layer-panel").hidden = true; renderStripSelection(); saveHash(); }
    } else if (key === "ArrowLeft" || key === "ArrowRight") {
      const delta = key === "ArrowLeft" ? -1 : 1;
      if (panelOpen) stepChannel(delta); else move(delta);
    } else if (key === "ArrowUp" || key === "ArrowDown") {
      if (panelOpen) return;
      moveLayer(key === "ArrowUp" ? -1 : 1);
    } else if (key === "m") {
      nextMethod();
    } else if (key === "Enter" && state.layer && !panelOpen && !(event.target.closest && event.target.closest("button"))) {
      const layer = layerInfo(state.layer);
      if (layer && layer.shape.length === 3) record(state.current).then((rec) => openChannel(strongest(rec.layers[layer.name], 1)[0]));
    } else if (key === "?") {
      $("help").hidden = !$("help").hidden;
    } else {
      return;
    }
    event.preventDefault();
  }

  function renderStripSelection() {
    for (const card of document.querySelectorAll(".card[data-layer]")) card.classList.toggle("on", card.dataset.layer === state.layer);
  }

  function saveHash() {
    const parts = ["image=" + encodeURIComponent(state.current)];
    if (state.method) parts.push("method=" + encodeURIComponent(state.method));
    if (state.layer) parts.push("layer=" + encodeURIComponent(state.layer));
    if (state.channel !== null && state.layer) parts.push("channel=" + state.channel);
    if (!String(state.current).startsWith("upload-")) history.replaceState(null, "", "#" + parts.join("&"));
  }

  function readHash() {
    const out = {};
    for (const part of location.hash.replace(/^#/, "").split("&")) {
      const [k, v] = part.split("=");
      if (k && v !== undefined) out[k] = decodeURIComponent(v);
    }
    return out;
  }

  function showFatal(message) {
    $("loading").hidden = true;
    const box = $("fatal");
    box.hidden = false;
    box.textContent = "The explorer could not start: " + message;
  }

  function renderHeader() {
    const site = state.site;
    const e = site.evaluation;
    $("model-info").replaceChildren(
      el("span", { class: "model-name", text: site.model.name }),
      el("span", { class: "muted", text: " · " + site.model.backend + " · " + site.model.parameters.toLocaleString("en") + " parameters · " + site.dataset }),
      el("span", { class: "accuracy", title: "on " + e.count + " test images", text: " · test accuracy " + pct(e.accuracy) }),
    );
    document.title = site.model.name + " — featurelens explorer";
  }

  async function start() {
    if (!state.site) { showFatal("data/site.js is missing or broken; write the site again with featurelens explore"); return; }
    state.live = FL.live || null;
    colourFilters();
    renderHeader();
    fillFilters();
    setupUpload();
    renderThumbs();
    renderHistory();
    renderConfusion();
    $("loading").hidden = true;
    $("app").hidden = false;
    $("layer-order").addEventListener("change", (e) => { state.order = e.target.value; select(state.current); });
    $("layer-scale").addEventListener("change", (e) => { state.scale = e.target.value; select(state.current); });
    $("channel-close").addEventListener("click", () => { closeChannelPanel(); state.channel = null; saveHash(); });
    $("channel-prev").addEventListener("click", () => stepChannel(-1));
    $("channel-next").addEventListener("click", () => stepChannel(1));
    $("help-button").addEventListener("click", () => { $("help").hidden = !$("help").hidden; });
    $("help-close").addEventListener("click", () => { $("help").hidden = true; });
    document.addEventListener("keydown", onKey);
    const wanted = readHash();
    const ids = state.site.sample.indices.map(String);
    if (wanted.method) state.method = wanted.method;
    if (wanted.layer && layerInfo(wanted.layer)) state.layer = wanted.layer;
    if (state.layer && wanted.channel !== undefined && /^\d+$/.test(wanted.channel)) state.channel = Number(wanted.channel);
    await select(ids.includes(wanted.image) ? wanted.image : ids[0]);
  }

  document.addEventListener("DOMContentLoaded", () => { start().catch((error) => showFatal(error.message)); });

  return {
    site: (data) => { state.site = data; },
    image: (data) => { state.records[String(data.index)] = data; },
    atlas: (data) => { state.atlases[data.layer] = data; },
    live: null,
    state: state,
  };
})();
