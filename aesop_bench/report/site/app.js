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

  /* ---- the PD plot: an SVG whose points name their run on hover ---- */
  function fillSelect(sel, items, chosen) {
    sel.replaceChildren(...items.map(([v, t]) => h("option", { value: v, selected: v === chosen }, t)));
  }
  function pdPlot() {
    const set = document.getElementById("pd-set").value;
    const x = document.getElementById("pd-x").value;
    const y = document.getElementById("pd-y").value;
    const row = (m) => D.summary.find((r) => r.metric === m && r.set === set);
    const rx = row(x), ry = row(y);
    const part = (c) => (c && c.n !== null && c.n !== undefined ? ` (n=${c.n}/${c.of ?? "?"})` : "");
    const pts = D.runs.map((run, i) => ({ label: run.label + (part(rx && rx.cells[i]) || part(ry && ry.cells[i])),
      x: rx && rx.cells[i].value, y: ry && ry.cells[i].value }))
      .filter((p) => p.x !== null && p.x !== undefined && p.y !== null && p.y !== undefined);
    const W = 560, H = 380, L = 64, R = 20, T = 16, B = 46;
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", id: "pd-plot" });
    if (!pts.length) {
      svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no run has both values on this set"));
      document.getElementById("pd-svg").replaceChildren(svg);
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
    for (let k = 0; k <= 4; k++) {
      const vx = x0 + (x1 - x0) * k / 4, vy = y0 + (y1 - y0) * k / 4;
      axis.append(s("line", { class: "grid", x1: px(vx), x2: px(vx), y1: T, y2: H - B }));
      axis.append(s("line", { class: "grid", x1: L, x2: W - R, y1: py(vy), y2: py(vy) }));
      axis.append(s("text", { x: px(vx), y: H - B + 16, "text-anchor": "middle" }, vx.toFixed(dec(x))));
      axis.append(s("text", { x: L - 6, y: py(vy) + 4, "text-anchor": "end" }, vy.toFixed(dec(y))));
    }
    axis.append(s("path", { d: `M${L},${T}V${H - B}H${W - R}`, fill: "none" }));
    axis.append(s("text", { x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle" }, mlabel(x)));
    axis.append(s("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle",
      transform: `rotate(-90 14 ${(T + H - B) / 2})` }, mlabel(y)));
    svg.append(axis);
    pts.forEach((p) => {
      const g = s("g", { class: "pt", "data-run": p.label });
      const title = s("title");
      title.textContent = `${p.label}: ${M[x] ? M[x].label : x} ${fmt(x, p.x)}, ${M[y] ? M[y].label : y} ${fmt(y, p.y)}`;
      g.append(title, s("circle", { cx: px(p.x), cy: py(p.y), r: 5, fill: colour(p.label) }),
        s("text", { x: px(p.x) + 8, y: py(p.y) - 6 }, p.label));
      svg.append(g);
    });
    document.getElementById("pd-svg").replaceChildren(svg);
  }
  function colour(labelText) { // a function of the label alone, as the PNG plots' colours
    let hsh = 0;
    for (const ch of labelText) hsh = (hsh * 31 + ch.codePointAt(0)) >>> 0;
    return `hsl(${hsh % 360}, 65%, 42%)`;
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
        item("model", `${run.model} (${run.source === "folder" ? "result folder" : "model"})`), item("folder", run.path),
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
