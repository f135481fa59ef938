// Side-by-side comparison (#/compare/{m}/{l}/{i}/{m2}/{l2}/{i2}, or #/compare?a=m/l/i&b=m/l/i
// to fill the form): both neurons' stats in one table, shared neighbours, and both pages.

import { h, fmt, fill, section, empty, neuronHref, clear, loading, errorBox } from "../dom.js";
import { renderNeuron } from "./neuron.js";
import { kindColor } from "../graph.js";
import * as q from "../queries.js";

const KEY = /^([A-Za-z0-9_.\-]+)\/(\d+)\/(\d+)$/;

export async function comparePage(page, route, alive) {
  const p = route.params;
  const a = p.model !== undefined ? `${p.model}/${p.layer}/${p.index}` : (route.query.a || "");
  const b = p.model2 !== undefined ? `${p.model2}/${p.layer2}/${p.index2}` : (route.query.b || "");
  const form = h("form", {
    class: "form-row compare-form",
    onsubmit: (e) => {
      e.preventDefault();
      const ka = form.a.value.trim();
      const kb = form.b.value.trim();
      if (!KEY.test(ka) || !KEY.test(kb)) {
        msg.textContent = "Give two neuron keys as model/layer/index, e.g. synth/1/3.";
        return;
      }
      location.hash = `#/compare/${ka}/${kb}`;
    },
  },
  h("label", {}, "A", h("input", { type: "text", name: "a", value: a, placeholder: "model/layer/index" })),
  h("label", {}, "B", h("input", { type: "text", name: "b", value: b, placeholder: "model/layer/index" })),
  h("button", { class: "btn primary", type: "submit" }, "Compare"));
  const msg = h("div", { class: "sub form-msg" });
  page.append(h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Compare two neurons"),
    h("div", { class: "sub" }, "Statistics side by side, the neighbours they share, and both neuron pages."))),
  section(null, form, msg));
  if (p.model2 === undefined) {
    page.append(empty("Enter two neuron keys to compare them."));
    return;
  }
  const body = h("div", {}, loading("Loading both neurons…"));
  page.append(body);
  let na;
  let nb;
  try {
    [na, nb] = await Promise.all([q.neuron(p.model, p.layer, p.index), q.neuron(p.model2, p.layer2, p.index2)]);
  } catch (err) {
    clear(body).append(errorBox(err));
    return;
  }
  if (!alive()) return;
  clear(body);
  const pathsSlot = h("div", { class: "paths" });
  const missing = [[na, a], [nb, b]].filter(([n]) => !n).map(([, k]) => k);
  if (missing.length) {
    body.append(errorBox(`no neuron ${missing.join(" or ")} in the graph`));
    return;
  }
  body.append(h("div", { class: "grid two" }, section("Statistics", statsTable(na, nb)),
    h("div", {}, section("Shared neighbours", sharedView(na, nb)), section("Strongest paths", pathsSlot))));
  // A path from A to B follows each edge's direction (A → C ← B is not one); both ways are asked.
  const pathsDone = fill(pathsSlot, async () => {
    const [ab, ba] = await Promise.all([q.paths(na.key, nb.key, { maxHops: 3, first: 3, directed: true }),
      q.paths(nb.key, na.key, { maxHops: 3, first: 3, directed: true })]);
    return { ab, ba };
  }, ({ ab, ba }) => h("div", {},
    h("h3", {}, "From A to B"), pathsView(ab, "A", "B"), h("h3", {}, "From B to A"), pathsView(ba, "B", "A")), "Finding paths…");
  const colA = h("div", { class: "compare-col", dataset: { side: "a" } }, h("h2", {}, h("a", { href: neuronHref(na.model, na.layer, na.index) }, `A · ${a}`)));
  const colB = h("div", { class: "compare-col", dataset: { side: "b" } }, h("h2", {}, h("a", { href: neuronHref(nb.model, nb.layer, nb.index) }, `B · ${b}`)));
  body.append(h("div", { class: "grid two" }, colA, colB));
  renderNeuron(colA, na, { compact: true });
  renderNeuron(colB, nb, { compact: true });
  await pathsDone;
}

function pathsView(list, from = "A", to = "B") {
  if (!list.length) return empty(`No path of at most 3 edges leads from ${from} to ${to} along the edges' directions (following each unit's strongest edges; correlations count both ways).`);
  return h("ol", { class: "path-list", dataset: { from } }, list.map((p) => h("li", { class: "path" },
    h("div", { class: "path-chain" }, p.nodes.map((n, i) => [
      i > 0 ? edgeChip(p.edges[i - 1], p.nodes[i - 1].key) : null,
      n.href ? h("a", { class: "path-node", href: n.href }, n.label) : h("span", { class: "path-node head" }, n.label),
    ])),
    h("div", { class: "sub small" }, `${p.hops} hop${p.hops === 1 ? "" : "s"} · strength ${fmt(p.strength, 3)}`))));
}

// Paths may walk an edge against its direction: the arrow shows the stored direction.
function edgeChip(e, fromKey) {
  const undirected = e.type === "CORRELATES" || e.type === "SIMILAR";
  const [pre, post] = undirected ? ["—", "—"] : e.source === fromKey ? ["—", "→"] : ["←", "—"];
  return h("span", { class: "path-edge", title: `${e.type} ${e.kind} ${fmt(e.weight, 4)} (${e.source} → ${e.target})` },
    `${pre} `, h("span", { class: "pill kind", style: { background: kindColor(e.kind) } }, e.kind), ` ${fmt(e.weight, 2)} ${post}`);
}

function statsTable(na, nb) {
  const keys = [...new Set([...Object.keys(na.stats || {}), ...Object.keys(nb.stats || {})])];
  if (!keys.length) return empty("No statistics stored for either neuron.");
  return h("table", { class: "data compare-stats" },
    h("thead", {}, h("tr", {}, h("th", {}, "Statistic"), h("th", { class: "num" }, "A"), h("th", { class: "num" }, "B"), h("th", { class: "num" }, "B − A"))),
    h("tbody", {}, keys.map((k) => {
      const va = na.stats[k];
      const vb = nb.stats[k];
      const d = typeof va === "number" && typeof vb === "number" ? vb - va : null;
      return h("tr", { dataset: { stat: k } }, h("td", {}, k), h("td", { class: "num" }, fmt(va, 4)), h("td", { class: "num" }, fmt(vb, 4)), h("td", { class: "num" }, fmt(d, 3)));
    })));
}

function neighbours(n) {
  const c = n.connectivity;
  const out = new Map();
  for (const [rel, list] of Object.entries(c)) {
    for (const e of list.items) {
      if (!e.key) continue;
      if (!out.has(e.key)) out.set(e.key, { label: e.label, href: e.href, via: [] });
      out.get(e.key).via.push(`${rel}${e.kind && e.kind !== rel ? ":" + e.kind : ""} ${fmt(e.weight, 3)}`);
    }
  }
  return out;
}

function sharedView(na, nb) {
  const A = neighbours(na);
  const B = neighbours(nb);
  const shared = [...A.keys()].filter((k) => B.has(k));
  const direct = A.has(nb.key) || B.has(na.key);
  return h("div", {},
    h("p", { class: "sub" }, direct ? "A and B are directly connected. " : "A and B are not directly connected. ",
      `${A.size} and ${B.size} neighbours; ${shared.length} shared.`),
    shared.length ? h("table", { class: "data shared" },
      h("thead", {}, h("tr", {}, h("th", {}, "Neighbour"), h("th", {}, "via A"), h("th", {}, "via B"))),
      h("tbody", {}, shared.map((k) => h("tr", {},
        h("td", {}, A.get(k).href ? h("a", { href: A.get(k).href }, A.get(k).label) : A.get(k).label),
        h("td", { class: "small" }, A.get(k).via.join(", ")), h("td", { class: "small" }, B.get(k).via.join(", "))))))
      : empty("No shared neighbours."));
}
