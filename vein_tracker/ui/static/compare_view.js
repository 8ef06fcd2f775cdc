// Before/after comparison: an st.components.v2 component (no iframe, no network, no CDN).
//
// Python sends `data`:
//   frames   [{label, src}]: the photos of one area in the baseline's frame, all the same
//            size (src: a JPEG data URL), oldest first
//   left, right   indexes of the frames shown first (left/before, right/after)
//   mode     "wipe" or "side"
//   width, height  pixel size of the frames
//   generation     changes when the frames change (another area, another pair)
//
// Everything here happens in the browser: the wipe, zoom (buttons, pinch, ctrl+wheel,
// double-click/tap), pan (drag) and the choice of sessions. The component never sends a
// value back (no setStateValue, no setTriggerValue), so no move causes a Streamlit rerun.
//
// The root element carries the state for tests and assistive tools: data-wipe (0-100),
// data-scale, data-mode, data-left, data-right.

const MAX_ZOOM = 12;
const HANDLE_HIT_PX = 24;

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function makeView(withWipe) {
  const view = el("div", { class: "vt-cmp-view", "data-testid": "vt-compare-view" });
  const under = el("div", { class: "vt-cmp-layer" });
  const underImg = el("img", { class: "vt-cmp-img", alt: "", draggable: "false" });
  under.appendChild(underImg);
  view.appendChild(under);
  const tagR = el("span", { class: "vt-cmp-tag vt-cmp-tag-r" });
  const parts = { view, under, underImg, tagR };
  if (withWipe) {
    const clip = el("div", { class: "vt-cmp-clip" });
    const over = el("div", { class: "vt-cmp-layer" });
    const overImg = el("img", { class: "vt-cmp-img", alt: "", draggable: "false" });
    over.appendChild(overImg);
    clip.appendChild(over);
    view.appendChild(clip);
    const handle = el("div", { class: "vt-cmp-handle", "data-testid": "vt-compare-handle", "aria-hidden": "true" });
    handle.appendChild(el("span", { class: "vt-cmp-grip" }, "◀ ▶"));
    view.appendChild(handle);
    const tagL = el("span", { class: "vt-cmp-tag vt-cmp-tag-l" });
    view.appendChild(tagL);
    Object.assign(parts, { clip, over, overImg, handle, tagL });
  }
  view.appendChild(tagR);
  return parts;
}

function build(root) {
  const wrap = el("div", { class: "vt-cmp", "data-testid": "vt-compare" });
  const bar = el("div", { class: "vt-cmp-bar", role: "toolbar", "aria-label": "Comparison" });
  const modeWipe = el("button", { type: "button", "data-mode": "wipe", "aria-pressed": "true" }, "Wipe");
  const modeSide = el("button", { type: "button", "data-mode": "side", "aria-pressed": "false" }, "Side by side");
  const leftLabel = el("label", { class: "vt-cmp-pick" }, "Before ");
  const leftSel = el("select", { "aria-label": "Before: session" });
  leftLabel.appendChild(leftSel);
  const rightLabel = el("label", { class: "vt-cmp-pick" }, "After ");
  const rightSel = el("select", { "aria-label": "After: session" });
  rightLabel.appendChild(rightSel);
  const zoomOut = el("button", { type: "button", "data-action": "zoom-out", title: "Zoom out", "aria-label": "Zoom out" }, "−");
  const zoomIn = el("button", { type: "button", "data-action": "zoom-in", title: "Zoom in", "aria-label": "Zoom in" }, "+");
  const fit = el("button", { type: "button", "data-action": "fit", title: "Whole photo" }, "Fit");
  const zoomText = el("span", { class: "vt-cmp-zoom", "aria-live": "polite" }, "100 %");
  bar.append(modeWipe, modeSide, leftLabel, rightLabel, zoomOut, zoomIn, fit, zoomText);

  const stage = el("div", { class: "vt-cmp-stage" });
  const wipe = makeView(true);
  const single = el("div", { class: "vt-cmp-wipe-wrap" });
  single.appendChild(wipe.view);
  const range = el("input", {
    type: "range", min: "0", max: "100", step: "0.5", value: "50",
    class: "vt-cmp-range", "aria-label": "Wipe: before ◀ ▶ after", "data-testid": "vt-compare-range",
  });
  single.appendChild(range);
  const pair = el("div", { class: "vt-cmp-pair" });
  const a = makeView(false);
  const b = makeView(false);
  pair.append(a.view, b.view);
  stage.append(single, pair);
  const hint = el("p", { class: "vt-cmp-hint" },
    "Drag the line (or anywhere on the photo) to wipe; pinch, ctrl + wheel or double-tap to zoom; drag to move a zoomed photo.");
  wrap.append(bar, stage, hint);
  root.appendChild(wrap);
  return { wrap, modeWipe, modeSide, leftSel, rightSel, zoomOut, zoomIn, fit, zoomText, single, pair, wipe, a, b, range };
}

export default function (component) {
  const { parentElement, data } = component;
  let st = parentElement.__vtCompare;
  if (!st) {
    const ui = build(parentElement);
    st = { ui, data: null, generation: null, mode: "wipe", left: 0, right: 0, wipe: 50, s: 1, tx: 0, ty: 0, pointers: new Map(), gesture: null };
    parentElement.__vtCompare = st;

    // ----- geometry: one transform (scale s, offset tx, ty in view px) for every view
    const activeViews = () => (st.mode === "wipe" ? [ui.wipe.view] : [ui.a.view, ui.b.view]);
    const viewSize = () => {
      const r = activeViews()[0].getBoundingClientRect();
      return { w: Math.max(1, r.width), h: Math.max(1, r.height) };
    };
    const clamp = () => {
      const { w, h } = viewSize();
      st.s = Math.min(MAX_ZOOM, Math.max(1, st.s));
      st.tx = Math.min(0, Math.max(w - w * st.s, st.tx));
      st.ty = Math.min(0, Math.max(h - h * st.s, st.ty));
    };
    const render = () => {
      clamp();
      const t = `translate(${st.tx}px, ${st.ty}px) scale(${st.s})`;
      for (const layer of [ui.wipe.under, ui.wipe.over, ui.a.under, ui.b.under]) layer.style.transform = t;
      const p = st.wipe;
      ui.wipe.clip.style.clipPath = `inset(0 ${100 - p}% 0 0)`;
      ui.wipe.handle.style.left = `${p}%`;
      if (String(ui.range.value) !== String(p)) ui.range.value = String(p);
      ui.zoomText.textContent = `${Math.round(st.s * 100)} %`;
      const zoomed = st.s > 1.001;
      for (const v of [ui.wipe.view, ui.a.view, ui.b.view]) v.classList.toggle("vt-zoomed", zoomed);
      const w = ui.wrap.dataset;
      w.wipe = String(Math.round(p * 10) / 10);
      w.scale = String(Math.round(st.s * 1000) / 1000);
      w.mode = st.mode;
      w.left = String(st.left);
      w.right = String(st.right);
    };
    st.render = render;

    const zoomAt = (factor, cx, cy) => {
      // Keep the image point under (cx, cy) (view px) where it is.
      const s0 = st.s;
      const s1 = Math.min(MAX_ZOOM, Math.max(1, s0 * factor));
      st.tx = cx - ((cx - st.tx) * s1) / s0;
      st.ty = cy - ((cy - st.ty) * s1) / s0;
      st.s = s1;
      render();
    };
    const centre = () => { const { w, h } = viewSize(); return [w / 2, h / 2]; };

    // ----- the toolbar
    const setMode = (m) => {
      st.mode = m === "side" ? "side" : "wipe";
      ui.modeWipe.setAttribute("aria-pressed", String(st.mode === "wipe"));
      ui.modeSide.setAttribute("aria-pressed", String(st.mode === "side"));
      ui.single.hidden = st.mode !== "wipe";
      ui.pair.hidden = st.mode !== "side";
      render();
    };
    st.setMode = setMode;
    ui.modeWipe.addEventListener("click", () => setMode("wipe"));
    ui.modeSide.addEventListener("click", () => setMode("side"));
    ui.zoomIn.addEventListener("click", () => zoomAt(1.5, ...centre()));
    ui.zoomOut.addEventListener("click", () => zoomAt(1 / 1.5, ...centre()));
    ui.fit.addEventListener("click", () => { st.s = 1; st.tx = 0; st.ty = 0; render(); });
    ui.range.addEventListener("input", () => { st.wipe = Number(ui.range.value); render(); });
    const pick = () => {
      st.left = Number(ui.leftSel.value) || 0;
      st.right = Number(ui.rightSel.value) || 0;
      st.showFrames();
    };
    ui.leftSel.addEventListener("change", pick);
    ui.rightSel.addEventListener("change", pick);

    // ----- pointers: drag to wipe or pan, two fingers to pinch, double-tap to zoom
    const local = (view, ev) => {
      const r = view.getBoundingClientRect();
      return [ev.clientX - r.left, ev.clientY - r.top, r.width];
    };
    const wipeTo = (view, ev) => {
      const [x, , w] = local(view, ev);
      st.wipe = Math.min(100, Math.max(0, (100 * x) / Math.max(1, w)));
      render();
    };
    const mid = () => {
      const ps = [...st.pointers.values()];
      return [(ps[0].x + ps[1].x) / 2, (ps[0].y + ps[1].y) / 2, Math.hypot(ps[0].x - ps[1].x, ps[0].y - ps[1].y)];
    };
    // A tap is a short press that hardly moved; two taps close in time and place zoom.
    let lastTap = null;
    const onDown = (view) => (ev) => {
      if (ev.pointerType === "mouse" && ev.button !== 0) return;
      view.setPointerCapture?.(ev.pointerId);
      const [x, y, w] = local(view, ev);
      st.pointers.set(ev.pointerId, { x, y });
      if (st.pointers.size === 2) {
        const [mx, my, d] = mid();
        // The first finger of a pinch did not mean to move the wipe: put it back.
        if (st.press && st.gesture && st.gesture.kind === "wipe") st.wipe = st.press.wipe;
        st.gesture = { kind: "pinch", mx, my, d, s: st.s, tx: st.tx, ty: st.ty };
        st.press = null;
        ev.preventDefault();
        return;
      }
      if (st.pointers.size > 2) return;
      st.press = { t: Date.now(), x, y, moved: 0, wipe: st.wipe };
      const nearLine = st.mode === "wipe" && Math.abs(x - (st.wipe / 100) * w) <= HANDLE_HIT_PX;
      if (st.mode === "wipe" && (nearLine || st.s <= 1.001)) {
        st.gesture = { kind: "wipe", view };
        wipeTo(view, ev);
      } else {
        st.gesture = { kind: "pan", x, y, tx: st.tx, ty: st.ty };
      }
      ev.preventDefault();
    };
    const onMove = (view) => (ev) => {
      if (!st.pointers.has(ev.pointerId)) return;
      const [x, y] = local(view, ev);
      st.pointers.set(ev.pointerId, { x, y });
      if (st.press) st.press.moved = Math.max(st.press.moved, Math.hypot(x - st.press.x, y - st.press.y));
      const g = st.gesture;
      if (!g) return;
      ev.preventDefault();
      if (g.kind === "wipe") wipeTo(g.view, ev);
      else if (g.kind === "pan") { st.tx = g.tx + (x - g.x); st.ty = g.ty + (y - g.y); render(); }
      else if (g.kind === "pinch" && st.pointers.size >= 2) {
        const [mx, my, d] = mid();
        const s1 = Math.min(MAX_ZOOM, Math.max(1, (g.s * d) / Math.max(1, g.d)));
        // The image point under the fingers' first midpoint follows the midpoint.
        st.tx = mx - ((g.mx - g.tx) * s1) / g.s;
        st.ty = my - ((g.my - g.ty) * s1) / g.s;
        st.s = s1;
        render();
      }
    };
    const onUp = (ev) => {
      st.pointers.delete(ev.pointerId);
      const press = st.press;
      if (st.pointers.size === 0 && press && st.gesture && st.gesture.kind !== "pinch") {
        const now = Date.now();
        if (press.moved < 10 && now - press.t < 300) {
          if (lastTap && now - lastTap.t < 350 && Math.hypot(press.x - lastTap.x, press.y - lastTap.y) < 30) {
            // Double tap / double click: zoom in 2.5x there, or back to the whole photo.
            lastTap = null;
            if (st.s > 1.001) { st.s = 1; st.tx = 0; st.ty = 0; render(); } else zoomAt(2.5, press.x, press.y);
          } else lastTap = { t: now, x: press.x, y: press.y };
        } else lastTap = null;
      }
      if (st.pointers.size === 0) { st.gesture = null; st.press = null; }
      else if (st.gesture && st.gesture.kind === "pinch") {
        // One finger left after a pinch: carry on as a pan from here.
        const [p] = [...st.pointers.values()];
        st.gesture = { kind: "pan", x: p.x, y: p.y, tx: st.tx, ty: st.ty };
      }
    };
    for (const v of [ui.wipe.view, ui.a.view, ui.b.view]) {
      v.addEventListener("pointerdown", onDown(v));
      v.addEventListener("pointermove", onMove(v));
      v.addEventListener("pointerup", onUp);
      v.addEventListener("pointercancel", onUp);
      v.addEventListener("wheel", (ev) => {
        // Only a pinch on a trackpad (ctrl + wheel) or ctrl + mouse wheel zooms: plain
        // wheel scrolls the page as everywhere else.
        if (!ev.ctrlKey && !ev.metaKey) return;
        ev.preventDefault();
        const [x, y] = local(v, ev);
        zoomAt(Math.exp(-ev.deltaY / 300), x, y);
      }, { passive: false });
    }
    const resize = new ResizeObserver(() => render());
    resize.observe(ui.wrap);
    st.resize = resize;

    st.showFrames = () => {
      const frames = (st.data && st.data.frames) || [];
      const f = (i) => frames[Math.min(frames.length - 1, Math.max(0, i))] || { src: "", label: "" };
      const before = f(st.left);
      const after = f(st.right);
      const setSrc = (img, src, alt) => {
        if (img.getAttribute("src") !== src) img.setAttribute("src", src);
        img.setAttribute("alt", alt);
      };
      setSrc(ui.wipe.underImg, after.src, `After: ${after.label}`);
      setSrc(ui.wipe.overImg, before.src, `Before: ${before.label}`);
      setSrc(ui.a.underImg, before.src, `Before: ${before.label}`);
      setSrc(ui.b.underImg, after.src, `After: ${after.label}`);
      ui.wipe.tagL.textContent = before.label;
      ui.wipe.tagR.textContent = after.label;
      ui.a.tagR.textContent = before.label;
      ui.b.tagR.textContent = after.label;
      ui.leftSel.value = String(st.left);
      ui.rightSel.value = String(st.right);
      render();
    };
  }

  // Every call: take the server's data; new frames start from the server's choice.
  st.data = data || {};
  const ui = st.ui;
  const frames = Array.isArray(st.data.frames) ? st.data.frames : [];
  if (st.data.generation !== st.generation) {
    st.generation = st.data.generation;
    const n = frames.length;
    const idx = (v, dflt) => (Number.isInteger(v) ? ((v % n) + n) % n : dflt);
    st.left = n ? idx(st.data.left, 0) : 0;
    st.right = n ? idx(st.data.right, n - 1) : 0;
    for (const sel of [ui.leftSel, ui.rightSel]) {
      sel.replaceChildren(...frames.map((fr, i) => el("option", { value: String(i) }, fr.label)));
    }
    const many = n > 2;
    ui.leftSel.parentElement.hidden = !many;
    ui.rightSel.parentElement.hidden = !many;
    const ratio = st.data.width && st.data.height ? `${st.data.width} / ${st.data.height}` : "4 / 3";
    for (const v of [ui.wipe.view, ui.a.view, ui.b.view]) v.style.aspectRatio = ratio;
    st.s = 1; st.tx = 0; st.ty = 0; st.wipe = 50;
    st.setMode(st.data.mode);
  }
  st.showFrames();

  return () => {
    st.resize?.disconnect();
    delete parentElement.__vtCompare;
  };
}
