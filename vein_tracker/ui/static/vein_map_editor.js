// Vein map editor: an st.components.v2 component (no iframe, no network, no CDN).
//
// Python sends `data`:
//   image      data URL of the baseline preview (JPEG)
//   overlay    data URL of the current map painted as RGBA PNG at the same size
//              (veins in their class colours, the region of interest outlined)
//   map_w, map_h   size of the vein map in map pixels (edits are in map pixels)
//   edits      the edit list the overlay shows (the server's copy)
//   generation a token: when it changes, the server reset the edits (saved, new pair)
//   width_px   default brush width in map pixels
// The component sends back one state value, `edits`: the whole list after every stroke,
// click, undo or clear. The server replays the list on the map (vein_tracker.vein_map),
// so the editor keeps no map of its own: it only draws the stroke in progress.
//
// Streamlit calls the default export again whenever `data` changes, with the same
// parentElement: the first call builds the editor, later calls only update it.

const TOOLS = [
  { id: "add1", label: "Add spider vein", title: "Brush: paint a missed spider vein" },
  { id: "add2", label: "Add reticular vein", title: "Brush: paint a missed feeder vein" },
  { id: "erase", label: "Erase", title: "Eraser: remove a false vein or part of one" },
  { id: "toggle", label: "Reject / accept vein", title: "Click a vein to reject it; click again to accept it" },
  { id: "roi", label: "Draw region", title: "Draw the region of interest free-hand" },
];
const STROKE_COLOURS = { add1: "rgb(255,40,120)", add2: "rgb(0,170,255)", erase: "rgba(255,255,255,0.9)", roi: "rgb(255,255,255)" };

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function build(root) {
  const wrap = el("div", { class: "vt-editor", "data-testid": "vt-vein-map-editor" });
  const bar = el("div", { class: "vt-toolbar", role: "toolbar" });
  const tools = {};
  for (const t of TOOLS) {
    const b = el("button", { type: "button", "data-tool": t.id, title: t.title, "aria-pressed": "false" }, t.label);
    tools[t.id] = b;
    bar.appendChild(b);
  }
  const sizeLabel = el("label", { class: "vt-size" }, "Brush ");
  const size = el("input", { type: "range", min: "1", max: "40", step: "1", value: "4", "aria-label": "Brush width" });
  sizeLabel.appendChild(size);
  bar.appendChild(sizeLabel);
  const clearRoi = el("button", { type: "button", "data-action": "roi_clear" }, "Clear region");
  const undo = el("button", { type: "button", "data-action": "undo" }, "Undo");
  const reset = el("button", { type: "button", "data-action": "reset" }, "Undo all");
  bar.append(clearRoi, undo, reset);
  const status = el("span", { class: "vt-status", "aria-live": "polite" });
  bar.appendChild(status);

  const stage = el("div", { class: "vt-stage" });
  const img = el("img", { class: "vt-photo", alt: "Baseline photo", draggable: "false" });
  const overlay = el("img", { class: "vt-overlay", alt: "", draggable: "false" });
  const canvas = el("canvas", { class: "vt-canvas", "data-testid": "vt-vein-map-canvas" });
  stage.append(img, overlay, canvas);
  wrap.append(bar, stage);
  root.appendChild(wrap);
  return { wrap, tools, size, clearRoi, undo, reset, status, img, overlay, canvas };
}

export default function (component) {
  const { parentElement, data, setStateValue } = component;
  let st = parentElement.__vtEditor;
  if (!st) {
    st = { ui: build(parentElement), edits: [], generation: null, tool: "erase", stroke: null, data: null };
    parentElement.__vtEditor = st;
    const ui = st.ui;

    const send = () => {
      ui.status.textContent = `${st.edits.length} edit${st.edits.length === 1 ? "" : "s"}`;
      setStateValue("edits", st.edits.slice());
    };
    const selectTool = (id) => {
      st.tool = id;
      for (const [tid, b] of Object.entries(ui.tools)) b.setAttribute("aria-pressed", String(tid === id));
      ui.canvas.dataset.tool = id;
    };
    st.selectTool = selectTool;
    for (const [tid, b] of Object.entries(ui.tools)) b.addEventListener("click", () => selectTool(tid));
    ui.clearRoi.addEventListener("click", () => { st.edits.push({ op: "roi_clear" }); send(); });
    ui.undo.addEventListener("click", () => { if (st.edits.length) { st.edits.pop(); send(); } });
    ui.reset.addEventListener("click", () => { if (st.edits.length) { st.edits = []; send(); } });

    // Map pixels of a pointer event (the canvas covers the photo exactly).
    const toMap = (ev) => {
      const r = ui.canvas.getBoundingClientRect();
      const d = st.data || {};
      const x = ((ev.clientX - r.left) / Math.max(1, r.width)) * (d.map_w || 1);
      const y = ((ev.clientY - r.top) / Math.max(1, r.height)) * (d.map_h || 1);
      return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
    };
    const widthPx = () => Number(ui.size.value) || 4;

    const drawStroke = () => {
      const c = ui.canvas;
      const ctx = c.getContext("2d");
      ctx.clearRect(0, 0, c.width, c.height);
      const s = st.stroke || st.pending;
      if (!s || !s.points.length || !st.data) return;
      const kx = c.width / st.data.map_w;
      const ky = c.height / st.data.map_h;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.strokeStyle = STROKE_COLOURS[s.tool] || "white";
      ctx.lineWidth = s.tool === "roi" ? 2 : Math.max(1, widthPx() * kx);
      if (s.tool === "roi") ctx.setLineDash([6, 4]);
      ctx.beginPath();
      s.points.forEach(([x, y], i) => (i ? ctx.lineTo(x * kx, y * ky) : ctx.moveTo(x * kx, y * ky)));
      if (s.points.length === 1) ctx.lineTo(s.points[0][0] * kx + 0.1, s.points[0][1] * ky);
      ctx.stroke();
      ctx.setLineDash([]);
    };

    ui.canvas.addEventListener("pointerdown", (ev) => {
      if (!st.data) return;
      ev.preventDefault();
      const p = toMap(ev);
      if (st.tool === "toggle") {
        st.edits.push({ op: "toggle", x: p[0], y: p[1] });
        send();
        return;
      }
      ui.canvas.setPointerCapture?.(ev.pointerId);
      st.stroke = { tool: st.tool, points: [p] };
      drawStroke();
    });
    ui.canvas.addEventListener("pointermove", (ev) => {
      if (!st.stroke) return;
      const p = toMap(ev);
      const last = st.stroke.points[st.stroke.points.length - 1];
      if (Math.abs(p[0] - last[0]) + Math.abs(p[1] - last[1]) >= 1) {
        st.stroke.points.push(p);
        drawStroke();
      }
    });
    const finish = () => {
      const s = st.stroke;
      st.stroke = null;
      if (!s) return;
      if (s.tool === "roi") {
        if (s.points.length >= 3) st.edits.push({ op: "roi", points: s.points });
      } else if (s.tool === "erase") {
        st.edits.push({ op: "erase", width_px: widthPx(), points: s.points });
      } else {
        st.edits.push({ op: "add", cls: s.tool === "add2" ? 2 : 1, width_px: widthPx(), points: s.points });
      }
      // Keep the stroke drawn until the server's new overlay arrives.
      st.pending = s;
      send();
    };
    ui.canvas.addEventListener("pointerup", finish);
    ui.canvas.addEventListener("pointercancel", finish);
    ui.canvas.addEventListener("pointerleave", (ev) => { if (st.stroke && !(ev.buttons & 1)) finish(); });

    const fit = () => {
      const c = ui.canvas;
      const r = ui.img.getBoundingClientRect();
      if (r.width && (c.width !== Math.round(r.width) || c.height !== Math.round(r.height))) {
        c.width = Math.round(r.width);
        c.height = Math.round(r.height);
      }
      drawStroke();
    };
    ui.img.addEventListener("load", fit);
    st.resize = new ResizeObserver(fit);
    st.resize.observe(ui.img);
    st.drawStroke = drawStroke;
    selectTool(st.tool);
  }

  // Every call: take the server's data.
  st.data = data || {};
  const ui = st.ui;
  if (st.data.generation !== st.generation) {
    st.generation = st.data.generation;
    st.edits = Array.isArray(st.data.edits) ? st.data.edits.slice() : [];
    if (st.data.width_px) ui.size.value = String(st.data.width_px);
  }
  if (st.data.image && ui.img.getAttribute("src") !== st.data.image) ui.img.setAttribute("src", st.data.image);
  if (st.data.overlay && ui.overlay.getAttribute("src") !== st.data.overlay) {
    ui.overlay.setAttribute("src", st.data.overlay);
  }
  // The overlay now shows every edit the server has seen.
  const shown = Array.isArray(st.data.edits) ? st.data.edits.length : 0;
  ui.wrap.dataset.shownEdits = String(shown);
  if (shown === st.edits.length) st.pending = null;
  ui.status.textContent = `${st.edits.length} edit${st.edits.length === 1 ? "" : "s"}`;
  st.drawStroke();

  return () => {
    st.resize?.disconnect();
    delete parentElement.__vtEditor;
  };
}
