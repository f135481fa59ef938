// Tiny DOM helpers: build elements without a framework and without innerHTML (no escaping bugs).
//   h("a", {href: "#/", class: "x"}, "text", child)  -> <a href="#/" class="x">text…</a>

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** A number shown compactly: 3 significant digits, no exponent for ordinary magnitudes. */
export function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en-US");
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(2);
  return x.toFixed(Math.max(0, digits - Math.max(0, Math.floor(Math.log10(a || 1)) + 1)));
}

/**
 * Show a token so that whitespace and newlines are visible but not disruptive, and raw bytes
 * as bytes: "<0xE2>" (byte-fallback tokens) stays as it is, other control characters become
 * "<0x07>", and U+FFFD (a byte of a multi-byte character that the stored text could not keep)
 * becomes "<0x??>" rather than a "�" that looks like a rendering fault.
 */
export function showToken(t) {
  if (t === null || t === undefined) return "∅";
  return String(t).replace(/\n/g, "⏎").replace(/\t/g, "⇥").replace(/\r/g, "↵")
    .replace(/\ufffd/g, "<0x??>")
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, (c) => `<0x${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}>`);
}

/** Whether a token's text holds a raw byte (shown as "<0x..>"). */
export const hasRawByte = (t) => /\ufffd|[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]|^<0x[0-9A-Fa-f]{2}>$/.test(String(t ?? ""));

export function loading(text = "Loading…") {
  return h("div", { class: "state loading", role: "status" }, h("span", { class: "spinner" }), text);
}

export function empty(text) {
  return h("div", { class: "state empty" }, text);
}

/**
 * An error message fit to show a user: file-system paths (a unix socket, a data directory) are
 * the server's business, not the reader's, and are replaced by "…".
 */
export function userMessage(err) {
  const msg = err && err.message ? err.message : String(err);
  return msg
    .replace(/(unix:\/\/)?(\/[\w.@+-]+)+\.sock\b|(\/[\w.@+-]+){3,}\/?/g, "…")
    .replace(/[A-Za-z]:\\[\w.\\ -]+/g, "…");
}

/**
 * An error state with a "Retry" button; `retry` defaults to rendering the current page again.
 */
export function errorBox(err, { retry = rerender } = {}) {
  return h("div", { class: "state error", role: "alert" }, h("strong", {}, "Error: "), userMessage(err),
    retry ? h("button", { type: "button", class: "btn retry", onclick: () => retry() }, "Retry") : null);
}

/** Render the current route again (what "Retry" does). */
export function rerender() {
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}

/** A card section with a title; body may be a node or a list of nodes. */
export function section(title, ...body) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...body);
}

/** Run an async loader and render its result into `slot`, showing loading/error states. */
export async function fill(slot, loader, render, loadingText) {
  clear(slot).append(loading(loadingText));
  try {
    const data = await loader();
    clear(slot);
    append(slot, [render(data)]);
  } catch (err) {
    console.error(err);
    clear(slot).append(errorBox(err));
  }
}

export function neuronHref(model, layer, index) {
  return `#/neuron/${encodeURIComponent(model)}/${layer}/${index}`;
}

export function neuronLabel(layer, index) {
  return `L${layer}/N${index}`;
}
