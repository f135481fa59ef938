// Asking the model live (the model worker behind the API): queries and the neuron page's
// "test your own text" box and steering panel.
//   await runText(model, "In the beginning", 10)
//   page.append(textBox(model, layer, index), steerPanel(model, layer, index))

import { gql } from "./api.js";
import { h, fmt, section, clear, loading, errorBox, showToken } from "./dom.js";
import { coloredTokens } from "./tokens.js";

const ACT = "layer index activation relative neuron { key }";

export async function runText(model, text, top = 10) {
  const d = await gql(`query RunText($model: String!, $text: String!, $top: Int!) {
    runText(model: $model, text: $text, top: $top) {
      tokens { position token id top { ${ACT} } topRelative { ${ACT} } }
      prediction { token probability } } }`, { model, text, top });
  return d.runText;
}

export async function neuronActivations(model, text, neurons) {
  const d = await gql(`query NeuronActivations($model: String!, $text: String!, $neurons: [ID!]!) {
    neuronActivations(model: $model, text: $text, neurons: $neurons) {
      tokens neurons { layer index activations maxActivation relative } } }`, { model, text, neurons });
  return d.neuronActivations;
}

export async function steer(model, prompt, interventions, maxNewTokens, temperature, seed) {
  const d = await gql(`query Steer($model: String!, $prompt: String!, $iv: [Intervention!]!, $n: Int!, $t: Float!, $s: Int!) {
    steer(model: $model, prompt: $prompt, interventions: $iv, maxNewTokens: $n, temperature: $t, seed: $s) {
      baseline steered promoted { token change } suppressed { token change } } }`,
  { model, prompt, iv: interventions, n: maxNewTokens, t: temperature, s: seed });
  return d.steer;
}

/** The Neuroscope heatmap of this neuron on text you type, scaled by its stored max. */
export function textBox(model, layer, index) {
  const input = h("textarea", { class: "live-text", rows: 3, placeholder: "Type text to see this neuron's activation on each token", "aria-label": "Your text" });
  const out = h("div", { class: "live-out" });
  const run = async () => {
    if (!input.value.trim()) return;
    clear(out).append(loading("Running the model…"));
    try {
      const r = await neuronActivations(model, input.value, [`${model}/${layer}/${index}`]);
      const n = r.neurons[0];
      const top = n.maxActivation && n.maxActivation > 0 ? n.maxActivation : Math.max(...n.activations.map(Math.abs), 1e-9);
      clear(out).append(
        h("div", { class: "sub" }, `scale: ±${fmt(top, 4)} (${n.maxActivation ? "the neuron's stored max" : "the largest value here"}); peak here ${fmt(Math.max(...n.activations), 4)}`),
        h("div", { class: "ctx" }, coloredTokens(r.tokens, n.activations, { max: top, min: -top })));
    } catch (err) {
      clear(out).append(errorBox(err));
    }
  };
  const button = h("button", { class: "btn primary", type: "button", onclick: run }, "Run");
  return section("Test your own text", h("div", { class: "live" }, input, button, out));
}

/** Clamp or scale this neuron and see the continuation change. */
export function steerPanel(model, layer, index) {
  const prompt = h("input", { class: "live-prompt", value: "In the beginning", "aria-label": "Prompt" });
  const mode = h("select", { "aria-label": "Intervention" }, h("option", { value: "value" }, "set to"), h("option", { value: "scale" }, "multiply by"));
  const amount = h("input", { type: "number", step: "any", value: "10", class: "num", "aria-label": "Amount" });
  const tokens = h("input", { type: "number", min: "1", max: "64", value: "20", class: "num", "aria-label": "New tokens" });
  const out = h("div", { class: "live-out" });
  const run = async () => {
    clear(out).append(loading("Generating…"));
    try {
      const iv = [{ neuron: `${model}/${layer}/${index}`, [mode.value]: Number(amount.value) }];
      const r = await steer(model, prompt.value, iv, Number(tokens.value), 0, 0);
      const list = (xs) => h("span", { class: "mono" }, xs.map((x) => `${showToken(x.token)} ${x.change >= 0 ? "+" : ""}${fmt(x.change, 3)}`).join(", "));
      clear(out).append(
        h("div", { class: "steer-row" }, h("b", {}, "without: "), h("span", { class: "steer-base" }, r.baseline)),
        h("div", { class: "steer-row" }, h("b", {}, "with: "), h("span", { class: "steer-out" }, r.steered)),
        h("div", { class: "sub" }, "logits raised most at the first step: ", list(r.promoted.slice(0, 5))),
        h("div", { class: "sub" }, "lowered most: ", list(r.suppressed.slice(0, 5))));
    } catch (err) {
      clear(out).append(errorBox(err));
    }
  };
  return section("Steer with this neuron",
    h("div", { class: "live" }, prompt, h("div", { class: "steer-controls" }, mode, amount, " new tokens ", tokens,
      h("button", { class: "btn primary", type: "button", onclick: run }, "Generate")), out));
}

/** The models of the graph as a <select> (the route's `model`, else the first), or null after
 * showing the error; for the pages that run the model. */
export async function modelPicker(page, route, alive) {
  let models = [];
  try {
    models = (await gql("{ models { name } }")).models.map((m) => m.name);
  } catch (err) {
    page.append(errorBox(err));
    return null;
  }
  if (!alive()) return null;
  const model = route.query.model || models[0] || "";
  const select = h("select", { name: "model", "aria-label": "Model" }, ...models.map((m) => h("option", { value: m, selected: m === model }, m)));
  return { model, select };
}
