// Session cookie hand-over: an st.components.v2 component with nothing to show.
//
// Python sends `data`: {action: "session" | "signout", code (for "session"), generation}.
// "session": right after a sign-in, POST the one-time code to the app's own
//   /vt-auth/session route; the response sets the HttpOnly, SameSite=Strict session cookie
//   (page JavaScript never sees the cookie's value).
// "signout": POST /vt-auth/signout; the response deletes the cookie.
// Each generation is sent once. Nothing is sent back to Streamlit (no rerun), nothing
// goes into a URL, nothing is fetched from another origin.

export default function (component) {
  const { parentElement, data } = component;
  const d = data || {};
  const done = (parentElement.__vtAuthDone = parentElement.__vtAuthDone || new Set());
  if (!d.generation || done.has(d.generation)) return;
  done.add(d.generation);
  const path = d.action === "signout" ? "/vt-auth/signout" : "/vt-auth/session";
  const body = d.action === "signout" ? {} : { code: String(d.code || "") };
  const root = parentElement.host || parentElement;
  root.setAttribute?.("data-vt-auth", "sending");
  fetch(new URL(path, window.location.origin), {
    method: "POST",
    credentials: "same-origin",
    cache: "no-store",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  })
    .then((r) => root.setAttribute?.("data-vt-auth", r.ok ? "done" : `refused-${r.status}`))
    .catch(() => root.setAttribute?.("data-vt-auth", "failed"));
}
