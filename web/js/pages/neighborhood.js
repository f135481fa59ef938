// Neighbourhood view (#/neighborhood/{m}/{l}/{i}?depth=&min=&types=&layout=&click=): the weighted
// neighbourhood of a neuron drawn with cytoscape.js; edge kind = colour, |weight| = width.

import { h, fmt, section, empty, neuronHref, clear, loading, errorBox } from "../dom.js";
import { drawNeighborhood, KIND_COLORS } from "../graph.js";
import { edgeText } from "../fold.js";
import { go } from "../router.js";
import * as q from "../queries.js";

export const EDGE_TYPES = [
  ["COMPOSES", "weight composition"],
  ["CORRELATES", "activation correlation"],
  ["HEAD_COMPOSES", "heads (Q/K/V/O)"],
  ["SIMILAR", "similar (N2G)"],
  ["ATTRIBUTES_TO", "circuits (attribution)"],
];

export async function neighborhoodPage(page, route, alive) {
  const { model, layer, index } = route.params;
  const head = route.params.head ?? null; // a head's neighbourhood (its page: #/head/…)
  const unit = head !== null ? `L${layer}H${head}` : `L${layer}/N${index}`;
  const unitTitle = head !== null ? `L${layer} · head ${head}` : `L${layer} · N${index}`;
  const qy = route.query;
  const depth = Math.min(3, Math.max(1, Number(qy.depth) || 1));
  const minWeight = qy.min !== undefined && qy.min !== "" ? Number(qy.min) : 0;
  const types = qy.types ? qy.types.split(",").filter(Boolean) : EDGE_TYPES.map(([t]) => t);
  const layout = qy.layout === "force" ? "force" : "layers";
  const click = qy.click === "recentre" ? "recentre" : "open";
  // Each edge kind in each direction ranked on its own scale (a virtual weight of 12 and a cosine
  // of 0.4 are not comparable): "per node" edges of every kind, inputs and outputs alike.
  const perKind = qy.rank !== "weight";
  const perNode = Math.min(50, Math.max(1, Number(qy.per) || (perKind ? 3 : 10)));
  const m = encodeURIComponent(model);
  const path = head !== null ? `/neighborhood/${model}/head/${layer}/${head}` : `/neighborhood/${model}/${layer}/${index}`;
  const state = { depth, min: minWeight, types: types.join(","), layout, click, per: perNode, rank: perKind ? "kind" : "weight" };
  const update = (patch) => go(path, { ...state, ...patch });

  page.append(
    h("div", { class: "crumbs" }, h("a", { href: "#/" }, "Models"), " / ", h("a", { href: `#/model/${m}` }, model), " / ",
      h("a", { href: head !== null ? q.headHref(model, layer, head) : neuronHref(model, layer, index) }, unit), " / neighbourhood"),
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, `Neighbourhood of ${model} · ${unitTitle}`),
        h("div", { class: "sub" }, "Edge colour is its kind, width its |weight| relative to the strongest of its kind; dashed edges are negative. Click a unit to open its page (or re-centre, see Click).")),
      h("div", { class: "actions" }, head !== null
        ? h("a", { class: "btn", href: q.headHref(model, layer, head) }, "Head page")
        : h("a", { class: "btn", href: neuronHref(model, layer, index) }, "Neuron page"))));

  const controls = h("form", { class: "form-row controls", onsubmit: (e) => e.preventDefault() },
    h("label", {}, "Depth",
      h("select", { name: "depth", onchange: (e) => update({ depth: e.target.value }) },
        [1, 2, 3].map((d) => h("option", { value: d, selected: d === depth }, String(d))))),
    h("label", {}, "Min |weight|",
      h("input", { type: "number", name: "min", step: "0.05", min: "0", value: String(minWeight), style: { width: "80px" },
        onchange: (e) => update({ min: e.target.value }) })),
    h("label", { title: perKind ? "edges followed from each node, per kind and direction" : "edges followed from each node" },
      perKind ? "Per kind" : "Per node",
      h("input", { type: "number", name: "per", step: "1", min: "1", max: "50", value: String(perNode), style: { width: "64px" },
        onchange: (e) => update({ per: e.target.value }) })),
    h("label", {}, "Rank",
      h("select", { name: "rank", onchange: (e) => update({ rank: e.target.value, per: "" }) },
        h("option", { value: "kind", selected: perKind }, "each kind on its own"),
        h("option", { value: "weight", selected: !perKind }, "by |weight| over all kinds"))),
    EDGE_TYPES.map(([t, label]) => h("label", { title: t },
      h("input", {
        type: "checkbox", name: "type", value: t, checked: types.includes(t),
        onchange: () => {
          const on = [...controls.querySelectorAll("input[name=type]:checked")].map((x) => x.value);
          update({ types: on.join(",") });
        },
      }), label)),
    h("label", {}, "Layout",
      h("select", { name: "layout", onchange: (e) => update({ layout: e.target.value }) },
        h("option", { value: "layers", selected: layout === "layers" }, "by layer"),
        h("option", { value: "force", selected: layout === "force" }, "force"))),
    h("label", {}, "Click",
      h("select", { name: "click", onchange: (e) => update({ click: e.target.value }) },
        h("option", { value: "open", selected: click === "open" }, "opens its page"),
        h("option", { value: "recentre", selected: click === "recentre" }, "re-centres graph"))));
  page.append(section(null, controls));

  const graphCard = h("section", { class: "card" });
  const info = h("div", { class: "sub small graph-info" });
  const cyEl = h("div", { class: "cy", id: "neighborhood-graph" });
  page.append(graphCard);
  if (!types.length) {
    graphCard.append(empty("Pick at least one edge type."));
    return;
  }
  graphCard.append(loading("Walking the graph…"));
  let g;
  try {
    g = await q.neighborhood(model, layer, index, { depth, minWeight, types, perNode, perKind, head });
  } catch (err) {
    clear(graphCard).append(errorBox(err));
    return;
  }
  if (!alive()) return;
  clear(graphCard);
  if (!g) {
    graphCard.append(errorBox(`no neuron ${model}/${layer}/${index} in the graph`));
    return;
  }
  const kinds = [...new Set(g.edges.map((e) => e.kind))];
  info.textContent = `${g.nodes.length} nodes · ${g.edges.length} edges · depth ${depth} · min |weight| ${fmt(minWeight)} · `
    + (perKind ? `up to ${perNode} per kind and direction` : `${perNode} strongest per node`);
  graphCard.append(info, cyEl, h("div", { class: "legend" },
    kinds.map((k) => h("span", { dataset: { kind: k } }, h("span", { class: "sw", style: { background: KIND_COLORS[k] || "#555" } }), k)),
    h("span", {}, h("span", { class: "node-sw", style: { background: "#dc2626" } }), "centre"),
    h("span", {}, h("span", { class: "node-sw", style: { background: "#475569" } }), "neuron"),
    h("span", {}, h("span", { class: "node-sw", style: { background: "#a16207", borderRadius: "0", transform: "rotate(45deg)" } }), "head")));
  if (g.truncated) graphCard.append(h("div", { class: "notice" }, "The API cut this neighbourhood short at its node budget: lower the depth or nodes per node, or raise the minimum weight."));
  if (g.edges.length === 0) graphCard.append(empty("No edges pass these filters: lower the minimum weight or add edge types."));

  const sel = h("div", { class: "selected sub" }, "Hover or tap an edge to see its weight.");
  graphCard.append(sel);
  requestAnimationFrame(async () => {
    if (!alive() || !cyEl.isConnected) return; // the user has moved on: draw nothing
    let cy;
    try {
      cy = await drawNeighborhood(cyEl, g, {
        layout,
        onNavigate: (node) => {
          const isHead = node.type !== "neuron";
          if (click === "recentre") go(isHead ? `/neighborhood/${node.model}/head/${node.layer}/${node.index}` : `/neighborhood/${node.model}/${node.layer}/${node.index}`, state);
          else location.hash = isHead ? q.headHref(node.model, node.layer, node.index) : neuronHref(node.model, node.layer, node.index);
        },
      });
    } catch (err) { // the layout's scripts did not load: say so where the graph would be
      cyEl.replaceWith(errorBox(err));
      return;
    }
    cy.on("mouseover tap", "edge", (evt) => { sel.textContent = edgeText(evt.target); });
    document.body.dataset.graph = "ready";
  });
  // Edges as a table too: readable, copyable, and what a screen reader gets.
  const rows = [...g.edges].sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight));
  const label = (id) => (g.nodes.find((n) => n.id === id) || { label: id }).label;
  page.append(section(`Edges (${rows.length})`, rows.length ? h("div", { class: "scroll" }, h("table", { class: "data edges" },
    h("thead", {}, h("tr", {}, h("th", {}, "From"), h("th", {}, "To"), h("th", {}, "Kind"), h("th", { class: "num" }, "Weight"))),
    h("tbody", {}, rows.map((e) => h("tr", {},
      h("td", {}, nodeLink(g, e.source, label)), h("td", {}, nodeLink(g, e.target, label)),
      h("td", {}, h("span", { class: "pill kind", style: { background: KIND_COLORS[e.kind] || "#555" } }, e.kind)),
      h("td", { class: "num" }, fmt(e.weight, 4))))))) : empty("No edges.")));
}

function nodeLink(g, id, label) {
  const n = g.nodes.find((x) => x.id === id);
  if (n && n.type === "neuron") return h("a", { href: neuronHref(n.model, n.layer, n.index) }, n.label);
  if (n && n.type === "head") return h("a", { href: q.headHref(n.model, n.layer, n.index) }, n.label);
  return label(id);
}
