// Tokens coloured by activation, in the manner of CircuitsVis ColoredTokens as used by
// Neuroscope: white at 0, red towards the positive extreme, blue towards the negative one.
//   coloredTokens(["The", " cat"], [0.1, 2.3], {max: 2.3, min: -2.3})
//   exampleView({tokens, activations, pivot, ...}, {max, min})  -> truncated view + expand

import { h, fmt, showToken } from "./dom.js";

// Neuroscope's truncated view: 50 tokens before and 10 after the max (or min) token.
export const BEFORE = 50;
export const AFTER = 10;

export function tokenColor(v, min, max) {
  if (v === null || v === undefined || Number.isNaN(v)) return ["transparent", "inherit"];
  let a;
  let rgb;
  if (v >= 0) {
    a = max > 0 ? Math.min(1, v / max) : 0;
    rgb = "220, 38, 38";
  } else {
    a = min < 0 ? Math.min(1, v / min) : 0;
    rgb = "37, 99, 235";
  }
  // Keep text readable on strong colours.
  return [`rgba(${rgb}, ${a.toFixed(3)})`, a > 0.62 ? "#fff" : "#111"];
}

export function coloredTokens(tokens, values, { min, max, pivot = -1, start = 0 } = {}) {
  const wrap = h("span", { class: "tokens" });
  for (let i = 0; i < tokens.length; i++) {
    const v = values[i];
    const [bg, fg] = tokenColor(v, min, max);
    const pos = start + i;
    const beyond = Number.isFinite(v) && ((v > 0 && v > max) || (v < 0 && v < min));
    const t = h("span", {
      class: "tok" + (pos === pivot ? " pivot" : "") + (beyond ? " beyond" : ""),
      style: { background: bg, color: fg },
      dataset: { value: v === undefined || v === null ? "" : String(v), pos: String(pos) },
    }, showToken(tokens[i]));
    wrap.append(t);
  }
  return wrap;
}

/**
 * The colour scale of a list of examples: red up to the largest positive activation, blue down
 * to the most negative one, over every example of the list but without position 0 (the BOS
 * token, often far larger than anything else, would wash every other colour out). Falls back to
 * position 0 only when nothing else is non-zero.
 *   listScale([{activations: [1118, 2, 5.9]}])  -> {max: 5.9, min: -1e-9..., skipped: 1118}
 */
export function listScale(examples) {
  let max = 0;
  let min = 0;
  let first = 0;
  for (const ex of examples) {
    const acts = ex.activations || [];
    for (let i = 0; i < acts.length; i++) {
      const v = acts[i];
      if (!Number.isFinite(v)) continue;
      if (i === 0) { first = Math.max(first, Math.abs(v)); continue; }
      if (v > max) max = v;
      if (v < min) min = v;
    }
  }
  if (!max && !min) { max = first || 1; min = -(first || 1); }
  return { max: max || 0, min: min || 0, bosExcluded: first > Math.max(max, -min) ? first : 0 };
}

/** The colour key of a scale: blue at its minimum, white at 0, red at its maximum. */
export function scaleLegend({ min, max, bosExcluded = 0 }) {
  const grad = `linear-gradient(to right, rgba(37, 99, 235, ${min < 0 ? 1 : 0}), rgba(255, 255, 255, 0), rgba(220, 38, 38, ${max > 0 ? 1 : 0}))`;
  return h("div", { class: "scale", dataset: { min: String(min), max: String(max) } },
    h("span", { class: "sub small" }, "colour scale"),
    h("span", { class: "scale-end" }, fmt(min, 3)),
    h("span", { class: "scale-bar", style: { background: grad } }),
    h("span", { class: "scale-end" }, fmt(max, 3)),
    h("span", { class: "sub small" }, bosExcluded
      ? `this list, position 0 left out (up to ${fmt(bosExcluded, 4)} there: shown at full colour)`
      : "this list, position 0 left out"));
}

/** Position of the extreme activation, used when the API does not give a pivot. */
export function pivotOf(activations, kind = "max") {
  let best = 0;
  for (let i = 1; i < activations.length; i++) {
    if (kind === "min" ? activations[i] < activations[best] : activations[i] > activations[best]) best = i;
  }
  return best;
}

/**
 * One dataset example: a header (rank, max/min activation, data index), the truncated view
 * around the pivot and a toggle to the full context.
 */
export function exampleView(ex, { min, max, kind = "max", title = "" } = {}) {
  const tokens = ex.tokens || [];
  const acts = ex.activations || [];
  const pivot = ex.pivot ?? pivotOf(acts, kind);
  const lo = Math.max(0, pivot - BEFORE);
  const hi = Math.min(tokens.length, pivot + AFTER + 1);
  const truncated = lo > 0 || hi < tokens.length;
  const short = h("div", { class: "ctx short" },
    lo > 0 ? h("span", { class: "ellipsis" }, "… ") : null,
    coloredTokens(tokens.slice(lo, hi), acts.slice(lo, hi), { min, max, pivot, start: lo }),
    hi < tokens.length ? h("span", { class: "ellipsis" }, " …") : null);
  const full = h("div", { class: "ctx full", hidden: true },
    coloredTokens(tokens, acts, { min, max, pivot }));
  const toggle = truncated
    ? h("button", {
      class: "link small", type: "button",
      onclick: (e) => {
        const showFull = full.hidden;
        full.hidden = !showFull;
        short.hidden = showFull;
        e.currentTarget.textContent = showFull ? "Show truncated" : `Show full context (${tokens.length} tokens)`;
      },
    }, `Show full context (${tokens.length} tokens)`)
    : null;
  const meta = h("div", { class: "ex-meta" },
    h("span", { class: "ex-title" }, title),
    h("span", {}, "max ", h("b", {}, fmt(ex.maxActivation ?? Math.max(...acts), 4))),
    h("span", {}, "min ", h("b", {}, fmt(ex.minActivation ?? Math.min(...acts), 4))),
    ex.dataIndex !== undefined && ex.dataIndex !== null ? h("span", {}, "data index ", h("b", {}, ex.dataIndex)) : null,
    h("span", {}, "at token ", h("b", {}, pivot)),
    toggle);
  return h("div", { class: "example", dataset: { kind } }, meta, short, full);
}

// One shared floating tooltip for every coloured token: shows token text and value on hover.
let tip = null;
export function installTokenTooltip() {
  if (tip) return;
  tip = h("div", { class: "tooltip", role: "tooltip", hidden: true });
  document.body.append(tip);
  document.addEventListener("mouseover", (e) => {
    const t = e.target.closest && e.target.closest(".tok");
    if (!t) { tip.hidden = true; return; }
    tip.textContent = "";
    tip.append(h("code", {}, JSON.stringify(t.textContent)), "  ", h("b", {}, fmt(parseFloat(t.dataset.value), 4)));
    const r = t.getBoundingClientRect();
    tip.hidden = false;
    tip.style.left = `${Math.max(4, r.left + window.scrollX)}px`;
    tip.style.top = `${r.bottom + window.scrollY + 4}px`;
  });
}
