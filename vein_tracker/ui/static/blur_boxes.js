// Blur-box tool: an st.components.v2 component (no iframe, no network, no CDN).
//
// Python sends `data`:
//   images     [{label, src}]: the pair's before and after pictures, the same crop of the
//              baseline frame at the same size (src: JPEG data URL)
//   width, height  size of those pictures, px; boxes are in these px
//   boxes      [[x, y, w, h], ...]: the boxes so far (the server's copy), e.g. a face the
//              check found
//   generation changes when the pair changes: the tool starts again from `boxes`
// Drag on either picture to draw a box; it hides the same place in both (a blur box
// applies to both halves of the composite). "Undo" and "Clear" edit the list. The whole
// list is sent back as the state value `boxes` after each change (one rerun per box).

const MIN_BOX = 6;

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function build(root) {
  const wrap = el("div", { class: "vt-blur", "data-testid": "vt-blur-boxes" });
  const bar = el("div", { class: "vt-blur-bar", role: "toolbar" });
  const undo = el("button", { type: "button" }, "Undo");
  const clear = el("button", { type: "button" }, "Clear");
  const status = el("span", { class: "vt-blur-status", "aria-live": "polite" });
  bar.append(undo, clear, status);
  const pics = el("div", { class: "vt-blur-pics" });
  wrap.append(bar, pics, el("p", { class: "vt-blur-hint" },
    "Drag over a face, a tattoo or anything that identifies the client: the box hides that place in both photos."));
  root.appendChild(wrap);
  return { wrap, undo, clear, status, pics };
}

export default function (component) {
  const { parentElement, data, setStateValue } = component;
  let st = parentElement.__vtBlur;
  if (!st) {
    st = { ui: build(parentElement), boxes: [], generation: null, views: [], drag: null };
    parentElement.__vtBlur = st;
    const ui = st.ui;
    st.send = () => {
      ui.status.textContent = `${st.boxes.length} box${st.boxes.length === 1 ? "" : "es"}`;
      ui.wrap.dataset.boxes = String(st.boxes.length);
      setStateValue("boxes", st.boxes.map((b) => b.slice()));
    };
    st.draw = () => {
      for (const v of st.views) {
        const c = v.canvas;
        const r = v.img.getBoundingClientRect();
        if (r.width && (c.width !== Math.round(r.width) || c.height !== Math.round(r.height))) {
          c.width = Math.round(r.width);
          c.height = Math.round(r.height);
        }
        const ctx = c.getContext("2d");
        ctx.clearRect(0, 0, c.width, c.height);
        const k = c.width / Math.max(1, st.data.width || 1);
        const all = st.drag ? [...st.boxes, st.drag.box] : st.boxes;
        for (const [x, y, w, h] of all) {
          ctx.fillStyle = "rgba(0, 0, 0, 0.55)";
          ctx.fillRect(x * k, y * k, w * k, h * k);
          ctx.strokeStyle = "rgb(255, 210, 0)";
          ctx.lineWidth = 2;
          ctx.strokeRect(x * k, y * k, w * k, h * k);
        }
      }
    };
    ui.undo.addEventListener("click", () => { if (st.boxes.length) { st.boxes.pop(); st.draw(); st.send(); } });
    ui.clear.addEventListener("click", () => { if (st.boxes.length) { st.boxes = []; st.draw(); st.send(); } });
    st.toPx = (v, ev) => {
      const r = v.canvas.getBoundingClientRect();
      const k = (st.data.width || 1) / Math.max(1, r.width);
      const x = Math.min(st.data.width, Math.max(0, (ev.clientX - r.left) * k));
      const y = Math.min(st.data.height, Math.max(0, (ev.clientY - r.top) * k));
      return [x, y];
    };
    st.resize = new ResizeObserver(() => st.draw());
  }

  st.data = data || {};
  const ui = st.ui;
  const images = Array.isArray(st.data.images) ? st.data.images : [];
  if (st.data.generation !== st.generation) {
    st.generation = st.data.generation;
    st.boxes = (Array.isArray(st.data.boxes) ? st.data.boxes : []).map((b) => b.map(Number));
    ui.pics.replaceChildren();
    st.views = images.map((im) => {
      const fig = el("figure", { class: "vt-blur-fig" });
      const stage = el("div", { class: "vt-blur-stage" });
      const img = el("img", { src: im.src, alt: im.label, draggable: "false" });
      const canvas = el("canvas", { class: "vt-blur-canvas", "data-testid": "vt-blur-canvas" });
      stage.append(img, canvas);
      fig.append(stage, el("figcaption", {}, im.label));
      ui.pics.appendChild(fig);
      const v = { img, canvas };
      canvas.addEventListener("pointerdown", (ev) => {
        ev.preventDefault();
        canvas.setPointerCapture?.(ev.pointerId);
        const [x, y] = st.toPx(v, ev);
        st.drag = { x0: x, y0: y, box: [x, y, 0, 0], view: v };
      });
      canvas.addEventListener("pointermove", (ev) => {
        if (!st.drag || st.drag.view !== v) return;
        const [x, y] = st.toPx(v, ev);
        const { x0, y0 } = st.drag;
        st.drag.box = [Math.min(x0, x), Math.min(y0, y), Math.abs(x - x0), Math.abs(y - y0)];
        st.draw();
      });
      const finish = () => {
        const d = st.drag;
        st.drag = null;
        if (d && d.box[2] >= MIN_BOX && d.box[3] >= MIN_BOX) {
          st.boxes.push(d.box.map((n) => Math.round(n)));
          st.send();
        }
        st.draw();
      };
      canvas.addEventListener("pointerup", finish);
      canvas.addEventListener("pointercancel", finish);
      img.addEventListener("load", () => st.draw());
      st.resize.observe(img);
      return v;
    });
    ui.status.textContent = `${st.boxes.length} box${st.boxes.length === 1 ? "" : "es"}`;
    ui.wrap.dataset.boxes = String(st.boxes.length);
  }
  st.draw();

  return () => {
    st.resize?.disconnect();
    delete parentElement.__vtBlur;
  };
}
