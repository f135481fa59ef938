// Run text (#/run?model=…&text=…): your text through the model, each token coloured by its
// strongest neuron (relative to that neuron's stored max); click a token for its neurons, and
// a neuron to open it. Search via inference, as Neuronpedia has it.

import { h, fmt, clear, loading, errorBox, empty, showToken, neuronHref } from "../dom.js";
import { tokenColor } from "../tokens.js";
import { runText, modelPicker } from "../live.js";
import { go } from "../router.js";

export async function runPage(page, route, alive) {
  const picked = await modelPicker(page, route, alive);
  if (!picked) return;
  const { model, select } = picked;
  const text = h("textarea", { name: "text", rows: 4, class: "live-text", "aria-label": "Text" }, route.query.text || "");
  const form = h("form", { class: "run-form", onsubmit: (e) => { e.preventDefault(); go("#/run", { model: select.value, text: text.value }); } },
    h("div", { class: "row" }, h("label", {}, "Model ", select)), text,
    h("button", { class: "btn primary", type: "submit" }, "Run"));
  page.append(h("h1", {}, "Run text"), h("p", { class: "sub" },
    "Each token is coloured by the neuron that fires most on it relative to that neuron's largest activation in the dataset. Click a token to list its neurons."), form);
  const out = h("div", {});
  page.append(out);
  if (!route.query.text) return;
  out.append(loading("Running the model…"));
  let r;
  try {
    r = await runText(model, route.query.text, 10);
  } catch (err) {
    clear(out).append(errorBox(err));
    return;
  }
  if (!alive()) return;
  clear(out);
  const detail = h("div", { class: "run-detail" }, empty("Click a token."));
  const strip = h("div", { class: "ctx run-tokens" });
  r.tokens.forEach((t) => {
    const best = (t.topRelative[0] || t.top[0]);
    const rel = best ? (best.relative ?? 0) : 0;
    const [bg, fg] = tokenColor(Math.min(rel, 1), -1, 1);
    const el = h("span", { class: "tok", style: { background: bg, color: fg }, dataset: { pos: String(t.position), value: String(rel) },
      onclick: () => showNeurons(detail, model, t, el) }, showToken(t.token));
    strip.append(el);
  });
  out.append(strip,
    h("div", { class: "sub" }, "Next token: ", ...r.prediction.map((p) => h("span", { class: "chip" }, `${showToken(p.token)} ${fmt(p.probability * 100, 2)}%`))),
    detail);
}

function showNeurons(detail, model, t, el) {
  for (const s of el.parentElement.querySelectorAll(".tok.sel")) s.classList.remove("sel");
  el.classList.add("sel");
  const rows = (list, title) => h("div", {}, h("h3", {}, title), list.length ? h("table", { class: "table" },
    h("thead", {}, h("tr", {}, h("th", {}, "neuron"), h("th", {}, "activation"), h("th", {}, "÷ its max"))),
    h("tbody", {}, ...list.map((a) => h("tr", {},
      h("td", {}, h("a", { href: neuronHref(model, a.layer, a.index), class: "run-neuron" }, `L${a.layer}/N${a.index}`)),
      h("td", {}, fmt(a.activation, 4)), h("td", {}, a.relative === null ? "—" : fmt(a.relative, 3))))))
    : empty("No neuron with a stored max."));
  clear(detail).append(h("h2", {}, `Token ${t.position}: `, h("code", {}, JSON.stringify(t.token))),
    h("div", { class: "grid two" }, rows(t.topRelative, "Relative to each neuron's max"), rows(t.top, "By activation")));
}
