/* aesop-bench results browser: plain JavaScript, no external resources. The data is the JSON inline in
   index.html (the same as data.json beside it). */
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("aesop-data").textContent);
  const M = Object.fromEntries(D.metrics.map((m) => [m.name, m]));
  const SETS = Object.fromEntries(D.sets.map((s) => [s.name, s]));
  const SVG = "http://www.w3.org/2000/svg";

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const k of kids.flat()) if (k !== null && k !== undefined) el.append(k);
    return el;
  }
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    for (const k of kids) el.append(k);
    return el;
  }
  const dec = (m) => (M[m] ? M[m].decimals : 4);
  const fmt = (m, v) => (v === null || v === undefined ? "-" : v.toFixed(dec(m)));
  const arrow = (m) => (M[m] && M[m].lower_better ? "\u2193" : "\u2191");
  const mlabel = (m) => (M[m] ? M[m].label : m) + " " + arrow(m);
  const slabel = (n) => (SETS[n] ? SETS[n].label : n);

  /* a table sorted by a click on any header (again: the other way); empty values always last */
  function sortable(container, columns, rows, opts) {
    opts = opts || {};
    let key = null;
    let dir = 1;
    function cmp(a, b) {
      if (a === b) return 0;
      if (a === null || a === undefined) return 1;
      if (b === null || b === undefined) return -1;
      return (a < b ? -1 : 1) * dir;
    }
    function draw() {
      const shown = rows.slice();
      if (key !== null) shown.sort((a, b) => cmp(columns[key].value(a), columns[key].value(b)));
      const head = h("tr", {}, columns.map((c, i) => {
        const th = h("th", { class: c.num ? "num" : null, "data-col": i, title: "sort" },
          c.label + (i === key ? (dir > 0 ? " \u25b2" : " \u25bc") : ""));
        th.addEventListener("click", () => {
          if (key === i) dir = -dir;
          else { key = i; dir = 1; }
          draw();
        });
        return th;
      }));
      const body = shown.map((r) => {
        const tr = h("tr", { class: opts.onRow ? "clickable" : null },
          columns.map((c) => {
            const td = h("td", { class: [c.num ? "num" : "", c.cls ? c.cls(r) : ""].join(" ").trim() || null });
            td.append(c.render ? c.render(r) : String(c.value(r) ?? "-"));
            return td;
          }));
        if (opts.onRow) tr.addEventListener("click", () => opts.onRow(r, shown));
        return tr;
      });
      const table = h("table", { class: "data", id: opts.id || null }, h("thead", {}, head), h("tbody", {}, body));
      container.replaceChildren(opts.scroll === false ? table : h("div", { class: "scroll" }, table));
    }
    draw();
  }

  /* ---- summary: the runs' table, as the Markdown table (bold best, underlined second) ---- */
  function summary() {
    const cols = [
      { label: "Metric", value: (r) => r.metric, render: (r) => mlabel(r.metric) },
      { label: "Set", value: (r) => r.set, render: (r) => slabel(r.set) },
    ];
    D.runs.forEach((run, i) => cols.push({
      label: run.label, num: true, value: (r) => r.cells[i].value,
      render: (r) => {
        const c = r.cells[i];
        let t = fmt(r.metric, c.value);
        if (c.n !== null && c.n !== undefined) t += ` (n=${c.n}/${c.of ?? "?"})`;
        const node = c.value !== null && c.rank === 1 ? h("strong", { text: t }) :
          c.value !== null && c.rank === 2 ? h("u", { text: t }) : document.createTextNode(t);
        return node;
      },
    }));
    sortable(document.getElementById("summary-table"), cols, D.summary, { id: "summary" });
    const notes = document.getElementById("notes");
    notes.replaceChildren(h("li", { text: "bold: best, underlined: second best per row (following each metric's direction)" }),
      ...D.notes.map((n) => h("li", { text: n })));
  }

  /* ---- the PD plot: an SVG whose points name their run (a label beside each, and on hover), in the colour and
     marker of the PNG/PDF figures (run_style, given per run in the data) ---- */
  function fillSelect(sel, items, chosen) {
    sel.replaceChildren(...items.map(([v, t]) => h("option", { value: v, selected: v === chosen }, t)));
  }
  /* axis ticks as matplotlib's MaxNLocator places them: the smallest step of 1, 2, 2.5 or 5 times a power of ten
     that leaves at most 7 ticks inside [lo, hi] (the step before it left 8 or more, so this one leaves at least
     4), on multiples of the step, each written with the decimals the step needs */
  function niceTicks(lo, hi) {
    for (let e = Math.floor(Math.log10(hi - lo)) - 2; ; e++) {
      for (const m of [1, 2, 2.5, 5]) {
        const step = m * 10 ** e;
        const k0 = Math.ceil(lo / step - 1e-9), k1 = Math.floor(hi / step + 1e-9);
        if (k1 - k0 + 1 > 7) continue;
        const digits = Math.max(0, -e + (m === 2.5 ? 1 : 0));
        return Array.from({ length: k1 - k0 + 1 }, (_, i) => {
          const v = (k0 + i) * step;
          return { v, text: v.toFixed(digits) };
        });
      }
    }
  }
  /* matplotlib's markers "o s D ^ v < > p h *" as outlines one unit across (y up), as its MarkerStyle draws them */
  const ring = (n, radius) => Array.from({ length: n }, (_, k) => {
    const a = Math.PI / 2 + 2 * Math.PI * k / n;
    return [radius(k) * Math.cos(a), radius(k) * Math.sin(a)];
  });
  const SHAPES = {
    s: [[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]],
    D: [[0, -0.707], [0.707, 0], [0, 0.707], [-0.707, 0]],
    "^": [[0, 0.5], [-0.5, -0.5], [0.5, -0.5]],
    v: [[0, -0.5], [0.5, 0.5], [-0.5, 0.5]],
    "<": [[-0.5, 0], [0.5, -0.5], [0.5, 0.5]],
    ">": [[0.5, 0], [-0.5, 0.5], [-0.5, -0.5]],
    p: ring(5, () => 0.5),
    h: ring(6, () => 0.5),
    "*": ring(10, (k) => (k % 2 ? 0.5 * 0.381966 : 0.5)),
  };
  const MARKER = 10; // a marker's size across, in the plot's units
  function marker(shape, cx, cy, fill) {
    const attrs = { class: "marker", fill, "data-marker": shape };
    if (!SHAPES[shape]) return s("circle", { ...attrs, cx, cy, r: MARKER / 2 }); // "o", and any other
    const points = SHAPES[shape].map(([u, w]) => `${(cx + u * MARKER).toFixed(2)},${(cy - w * MARKER).toFixed(2)}`);
    return s("polygon", { ...attrs, points: points.join(" ") });
  }
  /* where a point's label may go, in the order tried: right, left, above, below, then the diagonals; each (dx, dy)
     puts the label's box that side of the point, GAP away from its centre */
  const PLACES = [[1, 0], [-1, 0], [0, -1], [0, 1], [1, -1], [-1, -1], [1, 1], [-1, 1]];
  const GAP = 8;
  const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  /* put `text` (an SVG text in the page) at the first place beside (cx, cy) whose box stays inside `area` and
     overlaps no box of `taken` (points and the labels placed before); false where every place collides */
  function placeLabel(text, cx, cy, area, taken) {
    let b;
    try { b = text.getBBox(); } catch (e) { b = null; }
    if (!b || !b.width) { // not rendered (a hidden page): the box estimated from the font size
      const size = parseFloat(getComputedStyle(text).fontSize) || 11;
      b = { x: 0, y: -0.8 * size, width: 0.6 * size * text.textContent.length, height: 1.2 * size };
    }
    for (const [dx, dy] of PLACES) {
      const box = { w: b.width, h: b.height,
        x: dx > 0 ? cx + GAP : dx < 0 ? cx - GAP - b.width : cx - b.width / 2,
        y: dy > 0 ? cy + GAP : dy < 0 ? cy - GAP - b.height : cy - b.height / 2 };
      const inside = box.x >= area.x && box.y >= area.y && box.x + box.w <= area.x + area.w &&
        box.y + box.h <= area.y + area.h;
      if (inside && !taken.some((t) => overlaps(box, t))) {
        text.setAttribute("x", (box.x - b.x).toFixed(2));
        text.setAttribute("y", (box.y - b.y).toFixed(2));
        taken.push(box);
        return true;
      }
    }
    return false;
  }
  function pdPlot() {
    const set = document.getElementById("pd-set").value;
    const x = document.getElementById("pd-x").value;
    const y = document.getElementById("pd-y").value;
    const row = (m) => D.summary.find((r) => r.metric === m && r.set === set);
    const rx = row(x), ry = row(y);
    const part = (c) => (c && c.n !== null && c.n !== undefined ? ` (n=${c.n}/${c.of ?? "?"})` : "");
    const pts = D.runs.map((run, i) => ({ run, i,
      label: run.label + (part(rx && rx.cells[i]) || part(ry && ry.cells[i])),
      x: rx && rx.cells[i].value, y: ry && ry.cells[i].value }))
      .filter((p) => p.x !== null && p.x !== undefined && p.y !== null && p.y !== undefined);
    const W = 560, H = 380, L = 64, R = 20, T = 16, B = 46;
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", id: "pd-plot" });
    // in the page before the labels are placed: their boxes are measured there
    document.getElementById("pd-svg").replaceChildren(svg);
    if (!pts.length) {
      svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no run has both values on this set"));
      document.getElementById("pd-legend").replaceChildren();
      return;
    }
    const ext = (k) => {
      let lo = Math.min(...pts.map((p) => p[k])), hi = Math.max(...pts.map((p) => p[k]));
      const pad = (hi - lo || Math.abs(hi) || 1) * 0.12;
      return [lo - pad, hi + pad];
    };
    const [x0, x1] = ext("x"), [y0, y1] = ext("y");
    const px = (v) => L + (v - x0) / (x1 - x0) * (W - L - R);
    const py = (v) => H - B - (v - y0) / (y1 - y0) * (H - T - B);
    const axis = s("g", { class: "axis" });
    for (const t of niceTicks(x0, x1)) {
      axis.append(s("line", { class: "grid", x1: px(t.v), x2: px(t.v), y1: T, y2: H - B }));
      axis.append(s("text", { class: "tick", "data-axis": "x", x: px(t.v), y: H - B + 16, "text-anchor": "middle" },
        t.text));
    }
    for (const t of niceTicks(y0, y1)) {
      axis.append(s("line", { class: "grid", x1: L, x2: W - R, y1: py(t.v), y2: py(t.v) }));
      axis.append(s("text", { class: "tick", "data-axis": "y", x: L - 6, y: py(t.v) + 4, "text-anchor": "end" },
        t.text));
    }
    axis.append(s("path", { d: `M${L},${T}V${H - B}H${W - R}`, fill: "none" }));
    axis.append(s("text", { x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle" }, mlabel(x)));
    axis.append(s("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle",
      transform: `rotate(-90 14 ${(T + H - B) / 2})` }, mlabel(y)));
    svg.append(axis);
    // every marker first, then the labels, each kept off the markers (a box as wide as the widest, the diamond)
    // and off the labels placed before it
    const area = { x: L, y: T, w: W - L - R, h: H - T - B };
    const half = MARKER * 0.71;
    const taken = pts.map((p) => ({ x: px(p.x) - half, y: py(p.y) - half, w: 2 * half, h: 2 * half }));
    const groups = pts.map((p) => {
      const g = s("g", { class: "pt", "data-run": p.i });
      const title = s("title");
      title.textContent = `${p.label}: ${M[x] ? M[x].label : x} ${fmt(x, p.x)}, ${M[y] ? M[y].label : y} ${fmt(y, p.y)}`;
      g.append(title, marker(p.run.marker, px(p.x), py(p.y), p.run.colour));
      svg.append(g);
      return g;
    });
    pts.forEach((p, k) => {
      const text = s("text", { class: "label" }, p.label);
      groups[k].append(text);
      // where every place collides the point keeps its marker, named by its title and the legend
      if (!placeLabel(text, px(p.x), py(p.y), area, taken)) text.remove();
    });
    document.getElementById("pd-legend").replaceChildren(...pts.map((p) => {
      const icon = s("svg", { viewBox: "-8 -8 16 16", width: 14, height: 14, "aria-hidden": "true" },
        marker(p.run.marker, 0, 0, p.run.colour));
      return h("li", {}, icon, p.label);
    }));
  }
  function pdControls() {
    const sets = [...new Set(D.summary.map((r) => r.set))];
    fillSelect(document.getElementById("pd-set"), sets.map((n) => [n, slabel(n)]), sets[0]);
    const ms = D.metrics.map((m) => [m.name, m.label]);
    const has = (m) => D.metrics.some((x) => x.name === m);
    fillSelect(document.getElementById("pd-x"), ms, has("lpips") ? "lpips" : D.metrics[D.metrics.length > 1 ? 1 : 0].name);
    fillSelect(document.getElementById("pd-y"), ms, has("psnr") ? "psnr" : D.metrics[0].name);
    for (const id of ["pd-set", "pd-x", "pd-y"]) document.getElementById(id).addEventListener("change", pdPlot);
    pdPlot();
  }

  /* ---- per image: each run's value and its difference from the baseline ---- */
  function perImage() {
    const set = document.getElementById("img-set").value;
    const m = document.getElementById("img-metric").value;
    const base = Number(document.getElementById("img-baseline").value);
    const rows = D.per_image.filter((r) => set === "" || r.set === set);
    const v = (r, i) => (r.values[m] ? r.values[m][i] : null);
    const better = (d) => (M[m] && M[m].lower_better ? -d : d);
    const cols = [
      { label: "Set", value: (r) => r.set, render: (r) => slabel(r.set) },
      { label: "Image", value: (r) => r.image },
    ];
    D.runs.forEach((run, i) => cols.push({ label: run.label, num: true, value: (r) => v(r, i),
      render: (r) => fmt(m, v(r, i)) }));
    D.runs.forEach((run, i) => {
      if (i === base) return;
      const d = (r) => (v(r, i) === null || v(r, base) === null ? null : v(r, i) - v(r, base));
      cols.push({ label: `\u0394 ${run.label}`, num: true, value: d,
        render: (r) => (d(r) === null ? "-" : (d(r) >= 0 ? "+" : "") + d(r).toFixed(dec(m))),
        cls: (r) => (d(r) === null || d(r) === 0 ? "" : better(d(r)) > 0 ? "gain" : "loss") });
    });
    sortable(document.getElementById("image-table"), cols, rows,
      { id: "images", scroll: false, onRow: (r, shown) => openViewer(shown, shown.indexOf(r)) });
  }
  function imageControls() {
    fillSelect(document.getElementById("img-set"), [["", "all"], ...D.sets.map((x) => [x.name, x.label])], "");
    const ms = D.metrics.filter((m) => m.per_image);
    if (!ms.length) {
      document.getElementById("image-table").replaceChildren(h("p", { class: "hint",
        text: "these runs hold no per-image values (set-level metrics only)" }));
      return;
    }
    fillSelect(document.getElementById("img-metric"), ms.map((m) => [m.name, m.label]),
      ms.some((m) => m.name === "lpips") ? "lpips" : (ms[0] || {}).name);
    fillSelect(document.getElementById("img-baseline"), D.runs.map((r, i) => [String(i), r.label]), String(D.baseline));
    for (const id of ["img-set", "img-metric", "img-baseline"]) document.getElementById(id).addEventListener("change", perImage);
    perImage();
  }

  /* ---- the viewer: HR and every run side by side, one zoom and pan for all ---- */
  const view = { list: [], at: 0, z: 1, tx: 0, ty: 0, fitted: false };
  function panelsOf() { return [...document.querySelectorAll("#panels .vp")]; }
  function apply() {
    for (const vp of panelsOf()) {
      const img = vp.querySelector("img");
      if (img) img.style.transform = `translate(${view.tx}px, ${view.ty}px) scale(${view.z})`;
      const w = vp.clientWidth / view.z, hgt = vp.clientHeight / view.z;
      vp.dataset.view = [-view.tx / view.z, -view.ty / view.z, w, hgt].map((q) => q.toFixed(2)).join(",");
    }
  }
  function fit() {
    const vp = panelsOf()[0];
    const img = document.querySelector("#panels img");
    if (!vp || !img || !img.naturalWidth) return;
    view.z = Math.min(vp.clientWidth / img.naturalWidth, vp.clientHeight / img.naturalHeight);
    view.tx = (vp.clientWidth - img.naturalWidth * view.z) / 2;
    view.ty = (vp.clientHeight - img.naturalHeight * view.z) / 2;
    view.fitted = true;
    apply();
  }
  function panel(title, values, src, missing) {
    const vp = h("div", { class: "vp" });
    if (src) {
      const img = h("img", { alt: title, draggable: "false", decoding: "async" });
      img.addEventListener("load", () => { if (!view.fitted) fit(); else apply(); });
      img.src = src; // set only now: images load when the viewer shows them
      vp.append(img);
    } else {
      vp.append(h("div", { class: "missing", text: missing }));
    }
    return h("div", { class: "panel" }, h("div", { class: "label", title: title + " " + values },
      h("b", { text: title }), " " + values), vp);
  }
  function showImage() {
    const r = view.list[view.at];
    const set = SETS[r.set];
    document.getElementById("viewer-title").textContent =
      `${set ? set.label : r.set} / ${r.image}  (${view.at + 1} of ${view.list.length})`;
    document.getElementById("crop-command").textContent = "";
    const vals = (i) => D.metrics.filter((m) => m.per_image && r.values[m.name])
      .map((m) => `${m.label} ${fmt(m.name, r.values[m.name][i])}`).join("  ");
    const panels = [panel("HR", "", set && set.hr[r.image], `no HR image: ${set ? set.hr_note || "not found" : "unknown set"}`)];
    D.runs.forEach((run, i) => panels.push(panel(run.label, vals(i), run.images[r.set] && run.images[r.set][r.image],
      run.images_note || "no SR image for this image")));
    document.getElementById("panels").replaceChildren(...panels);
    for (const vp of panelsOf()) attach(vp);
    view.fitted = false;
    apply();
  }
  function openViewer(list, at) {
    view.list = list;
    view.at = at;
    document.getElementById("viewer").hidden = false;
    showImage();
  }
  function closeViewer() {
    document.getElementById("viewer").hidden = true;
    document.getElementById("panels").replaceChildren();
  }
  function zoomAt(f, px, py) {
    view.tx = px - (px - view.tx) * f;
    view.ty = py - (py - view.ty) * f;
    view.z *= f;
    apply();
  }
  function toImage(vp, e) {
    const b = vp.getBoundingClientRect();
    return [(e.clientX - b.left - view.tx) / view.z, (e.clientY - b.top - view.ty) / view.z];
  }
  function drawBox(x, y, w, hgt) {
    for (const vp of panelsOf()) {
      let box = vp.querySelector(".box");
      if (!box) { box = h("div", { class: "box" }); vp.append(box); }
      Object.assign(box.style, { left: `${view.tx + x * view.z}px`, top: `${view.ty + y * view.z}px`,
        width: `${w * view.z}px`, height: `${hgt * view.z}px` });
    }
  }
  /* an argument as a POSIX shell reads it back, as Python's shlex.quote writes it: as it is where every
     character is safe, else in single quotes (a single quote itself as '"'"') */
  function shellQuote(arg) {
    if (arg === "") return "''";
    if (!/[^\w@%+=:,./-]/.test(arg)) return arg;
    return "'" + arg.replace(/'/g, "'\"'\"'") + "'";
  }
  function cropCommand(x, y, w, hgt) {
    const r = view.list[view.at];
    const args = ["aesop-bench", "plot", "crops", ...D.runs.map((run) => run.path), "--set", r.set,
      "--image", r.image, "--box", `${x},${y},${w},${hgt}`];
    document.getElementById("crop-command").textContent = args.map(shellQuote).join(" ");
  }
  function attach(vp) {
    vp.addEventListener("wheel", (e) => {
      e.preventDefault();
      const b = vp.getBoundingClientRect();
      zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - b.left, e.clientY - b.top);
    }, { passive: false });
    vp.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      vp.setPointerCapture(e.pointerId);
      const start = { x: e.clientX, y: e.clientY, tx: view.tx, ty: view.ty, box: e.shiftKey, at: toImage(vp, e) };
      vp.classList.add("dragging");
      const move = (ev) => {
        if (start.box) {
          const [ax, ay] = start.at, [bx, by] = toImage(vp, ev);
          drawBox(Math.min(ax, bx), Math.min(ay, by), Math.abs(bx - ax), Math.abs(by - ay));
        } else {
          view.tx = start.tx + ev.clientX - start.x;
          view.ty = start.ty + ev.clientY - start.y;
          apply();
        }
      };
      const up = (ev) => {
        vp.removeEventListener("pointermove", move);
        vp.removeEventListener("pointerup", up);
        vp.classList.remove("dragging");
        if (start.box) {
          const [ax, ay] = start.at, [bx, by] = toImage(vp, ev);
          const x = Math.max(0, Math.round(Math.min(ax, bx))), y = Math.max(0, Math.round(Math.min(ay, by)));
          const w = Math.round(Math.abs(bx - ax)), hgt = Math.round(Math.abs(by - ay));
          if (w > 0 && hgt > 0) cropCommand(x, y, w, hgt);
        }
      };
      vp.addEventListener("pointermove", move);
      vp.addEventListener("pointerup", up);
    });
  }
  document.addEventListener("keydown", (e) => {
    if (document.getElementById("viewer").hidden) return;
    const vp = panelsOf()[0];
    if (e.key === "Escape") closeViewer();
    else if (e.key === "ArrowRight" && view.at + 1 < view.list.length) { view.at++; showImage(); }
    else if (e.key === "ArrowLeft" && view.at > 0) { view.at--; showImage(); }
    else if ((e.key === "+" || e.key === "=") && vp) zoomAt(1.25, vp.clientWidth / 2, vp.clientHeight / 2);
    else if (e.key === "-" && vp) zoomAt(0.8, vp.clientWidth / 2, vp.clientHeight / 2);
    else if (e.key === "0") fit();
    else return;
    e.preventDefault();
  });
  document.getElementById("viewer-close").addEventListener("click", closeViewer);
  window.addEventListener("resize", () => { if (!document.getElementById("viewer").hidden) apply(); });

  /* ---- the runs: protocol, metric versions, data ---- */
  function runInfo() {
    const item = (k, v) => [h("dt", { text: k }), h("dd", { text: v })];
    document.getElementById("run-info").replaceChildren(...D.runs.map((run) => {
      const p = run.protocol || {};
      const proto = `${p.name} (x${p.scale}, modcrop ${p.modcrop}, border ${p.crop_border}, Y ${p.y_round ? "rounded" : "float"}` +
        `, test data ${p.test_data === "ldl" ? "LDL's where the protocol reads it" : "each set's own"})`;
      const data = Object.entries(run.data).map(([set, d]) => `${slabel(set)}: ` +
        (d.source ? `${d.source === "ldl" ? "LDL's" : "the set's own"} files, ` : "") + d.area +
        (d.fallback ? ` (fallback: ${d.fallback})` : "") +
        (run.incomplete[set] ? ` [${run.incomplete[set]}]` : "")).join("; ");
      return h("div", { class: "run" }, h("h3", { text: run.label }), h("dl", {},
        run.source === "folder" ? item("result folder", run.sr_folder) : item("model", run.model),
        item("run folder", run.path),
        item("protocol", proto), item("metric versions", Object.entries(run.versions).map(([k, v]) => `${k} ${v}`).join(", ")),
        item("data", data), run.images_note ? [h("dt", { text: "images" }), h("dd", { class: "warn", text: run.images_note })] : []));
    }));
    document.getElementById("meta").textContent = `${D.runs.length} runs, ${D.sets.length} sets, ` +
      `${D.per_image.length} images; written by ${D.generator}`;
  }

  summary();
  pdControls();
  imageControls();
  runInfo();
  document.body.dataset.ready = "1";
})();
