// An attention head's page (#/head/{m}/{l}/{h}): the neurons it reads from (Q, K, V composition:
// neuron → head) and writes into (O composition: head → neuron), strongest first, the other heads
// of its layer, and its neighbourhood drawn with cytoscape.js.

import { h, fmt, section, empty, neuronHref, clear, loading, errorBox } from "../dom.js";
import { drawNeighborhood, KIND_COLORS } from "../graph.js";
import * as q from "../queries.js";

export async function headPage(page, route, alive) {
  const { model, layer, head } = route.params;
  const m = encodeURIComponent(model);
  const neighbourhood = `#/neighborhood/${m}/head/${layer}/${head}`;
  page.append(
    h("div", { class: "crumbs" }, h("a", { href: "#/" }, "Models"), " / ", h("a", { href: `#/model/${m}` }, model), " / ",
      h("a", { href: `#/model/${m}/layer/${layer}` }, `layer ${layer}`), " / ", `head ${head}`),
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, `${model} · L${layer} · H${head}`),
        h("div", { class: "sub" }, "Q, K and V composition: neurons whose output this head reads. O composition: neurons that read what it writes.")),
      h("div", { class: "actions" },
        head > 0 ? h("a", { class: "btn", href: q.headHref(model, layer, head - 1) }, "← Prev") : null,
        h("a", { class: "btn", href: q.headHref(model, layer, head + 1) }, "Next →"),
        h("a", { class: "btn primary", href: neighbourhood }, "Neighbourhood graph"))));
  const body = h("div", {}, loading("Loading head…"));
  page.append(body);
  let d;
  try {
    d = await q.head(model, layer, head, 20);
  } catch (err) {
    clear(body).append(errorBox(err));
    return;
  }
  if (!alive()) return;
  clear(body);
  body.append(section(`Heads of layer ${layer}`, h("div", { class: "layers" }, d.layerHeads.map((x) => h("a", {
    href: q.headHref(model, x.layer, x.head), class: x.head === head ? "on" : "", dataset: { head: String(x.head) },
  }, `H${x.head}`)))));
  body.append(h("div", { class: "grid two" },
    section(`Reads from (Q, K, V) · ${fmt(d.totals.reads)}`, edgeTable(d.reads, "reads", "No neuron composes into this head.")),
    section(`Writes into (O) · ${fmt(d.totals.writes)}`, edgeTable(d.writes, "writes", "This head composes into no stored neuron."))));

  // Its immediate neighbourhood, drawn: neurons by layer around the head.
  const graphCard = section("Neighbourhood", loading("Walking the graph…"));
  body.append(graphCard);
  let g;
  try {
    g = await q.neighborhood(model, layer, null, { depth: 1, types: ["HEAD_COMPOSES"], perNode: 12, head });
  } catch (err) {
    clear(graphCard).append(h("h2", {}, "Neighbourhood"), errorBox(err));
    return;
  }
  if (!alive()) return;
  clear(graphCard).append(h("h2", {}, "Neighbourhood"));
  if (!g || !g.edges.length) {
    graphCard.append(empty("No edges to draw."));
    return;
  }
  const cyEl = h("div", { class: "cy", id: "head-graph" });
  graphCard.append(h("div", { class: "sub small" }, `${g.nodes.length} nodes · ${g.edges.length} edges · `,
    h("a", { href: neighbourhood }, "explore further")), cyEl);
  await new Promise((resolve) => requestAnimationFrame(resolve));
  if (!alive() || !cyEl.isConnected) return;
  await drawNeighborhood(cyEl, g, {
    layout: "layers",
    onNavigate: (node) => {
      location.hash = node.type === "neuron" ? neuronHref(node.model, node.layer, node.index) : q.headHref(node.model, node.layer, node.index);
    },
  });
  document.body.dataset.graph = "ready";
}

function edgeTable(rows, name, none) {
  if (!rows.length) return empty(none);
  return h("table", { class: `data head-edges ${name}` },
    h("thead", {}, h("tr", {}, h("th", {}, "Neuron"), h("th", {}, "Kind"), h("th", { class: "num" }, "Weight"), h("th", { class: "num" }, "Interest"))),
    h("tbody", {}, rows.map((r) => h("tr", { dataset: { key: r.key } },
      h("td", {}, h("a", { href: r.href }, r.label)),
      h("td", {}, h("span", { class: "pill kind", style: { background: KIND_COLORS[r.kind] || "#555" } }, r.kind)),
      h("td", { class: "num" }, fmt(r.weight, 4)),
      h("td", { class: "num" }, fmt(r.interest))))));
}
