// Attribution graph (#/attribution?model=…&prompt=…&target=…): a prompt's circuit over MLP
// neurons, tokens along the bottom, layers going up, the target logit on top; edge width by
// |effect| (red raises, blue lowers); hover for values, click a neuron to open it.

import { h, fmt, clear, loading, errorBox, showToken, neuronHref } from "../dom.js";
import { gql } from "../api.js";
import { go } from "../router.js";
import { modelPicker } from "../live.js";
import { drawAttribution } from "../graph.js";

const QUERY = `query Attribute($model: String!, $prompt: String!, $target: String) {
  attribute(model: $model, prompt: $prompt, target: $target) {
    tokens target targetLogit nodes { id kind position layer index token activation influence }
    edges { source target weight } } }`;

export async function attributionPage(page, route, alive) {
  const picked = await modelPicker(page, route, alive);
  if (!picked) return;
  const { model, select } = picked;
  const prompt = h("input", { name: "prompt", class: "live-prompt", value: route.query.prompt || "The capital of France is", "aria-label": "Prompt" });
  const target = h("input", { name: "target", value: route.query.target || "", placeholder: "target token (default: the prediction)", "aria-label": "Target token" });
  page.append(h("h1", {}, "Attribution graph"),
    h("p", { class: "sub" }, "Which neurons carry the prompt to the target token's logit: direct effects (activation × gradient) with attention and normalisation frozen, pruned to the nodes and edges that carry most of the influence."),
    h("form", { class: "run-form", onsubmit: (e) => { e.preventDefault(); go("#/attribution", { model: select.value, prompt: prompt.value, target: target.value }); } },
      h("div", { class: "row" }, h("label", {}, "Model ", select), " ", target), prompt,
      h("button", { class: "btn primary", type: "submit" }, "Attribute")));
  const out = h("div", {});
  page.append(out);
  if (!route.query.prompt) return;
  out.append(loading("Computing the attribution graph (seconds on a CPU)…"));
  let g;
  try {
    g = (await gql(QUERY, { model, prompt: route.query.prompt, target: route.query.target || null })).attribute;
  } catch (err) {
    clear(out).append(errorBox(err));
    return;
  }
  if (!alive()) return;
  const el = h("div", { class: "cy attribution", id: "attribution-graph" });
  const info = h("div", { class: "sub attr-info" }, "Hover a node or edge.");
  clear(out).append(
    h("div", { class: "sub" }, `target ${JSON.stringify(g.target)} (logit ${fmt(g.targetLogit, 3)}); `,
      `${g.nodes.filter((n) => n.kind === "neuron").length} neurons, ${g.edges.length} edges`),
    el, info);
  requestAnimationFrame(() => {
    if (!el.isConnected) return;
    drawAttribution(el, g, {
      onHover: (text) => { info.textContent = text; },
      onNavigate: (n) => { if (n.kind === "neuron") location.hash = neuronHref(model, n.layer, n.index); },
      describe,
    });
  });
}

export function describe(n) {
  if (n.kind === "token") return `token ${n.position}: ${JSON.stringify(n.token)} · influence ${fmt(n.influence, 3)}`;
  if (n.kind === "logit") return `logit of ${JSON.stringify(n.token)} = ${fmt(n.activation, 3)}`;
  return `L${n.layer}/N${n.index} at ${JSON.stringify(showToken(n.token))} (position ${n.position}) · activation ${fmt(n.activation, 3)} · influence ${fmt(n.influence, 3)}`;
}
