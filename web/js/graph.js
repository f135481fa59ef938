// Graph drawing with cytoscape.js (vendored ES module, no CDN): the weighted neighbourhood of a
// neuron and the N2G pattern graph.
//   const cy = drawNeighborhood(el, {nodes, edges, center}, {onNavigate: (node) => …});
//   window.cy.nodes().length   // tests read the live instance

import cytoscape from "../vendor/cytoscape.esm.min.js";
import { layerId, setupFolds } from "./fold.js";

// One colour per edge kind, shared by the neighbourhood drawing, its legend and the lists.
export const KIND_COLORS = {
  in_in: "#1f77b4",
  in_out: "#17becf",
  out_in: "#2ca02c",
  out_out: "#98df8a",
  virtual: "#9467bd",
  gate_virtual: "#c5b0d5",
  pearson: "#ff7f0e",
  correlated: "#ff7f0e",
  n2g: "#e377c2",
  similar: "#e377c2",
  K: "#8c564b",
  Q: "#bcbd22",
  V: "#7f7f7f",
  O: "#d62728",
  attribution: "#0d9488",
};

// Every live drawing, so a page change can free them all (compare draws two pattern graphs).
const live = new Set();

export function destroyAll() {
  for (const cy of live) cy.destroy();
  live.clear();
  window.cy = undefined;
  window.cyPattern = undefined;
}

export function kindColor(kind) {
  return KIND_COLORS[kind] || "#555";
}

const BASE_STYLE = [
  {
    selector: "node",
    style: {
      label: "data(label)", "font-size": 10, "text-valign": "bottom", "text-margin-y": 3,
      "background-color": "#64748b", width: 18, height: 18, color: "#1e293b",
      "text-background-color": "#fff", "text-background-opacity": 0.7, "text-background-padding": 1,
    },
  },
  { selector: "node[type = 'neuron']", style: { "background-color": "#475569" } },
  { selector: "node[type = 'head']", style: { shape: "diamond", "background-color": "#a16207", width: 20, height: 20 } },
  { selector: "node[?center]", style: { "background-color": "#dc2626", width: 28, height: 28, "font-weight": "bold", "border-width": 3, "border-color": "#fecaca" } },
  { selector: "node:selected", style: { "border-width": 3, "border-color": "#2563eb" } },
  {
    selector: "edge",
    style: {
      width: "data(width)", "line-color": "data(color)", "target-arrow-color": "data(color)",
      "target-arrow-shape": "triangle", "arrow-scale": 0.8, "curve-style": "bezier", opacity: 0.8,
    },
  },
  { selector: "edge[?negative]", style: { "line-style": "dashed" } },
  { selector: "edge[?curved]", style: { "curve-style": "unbundled-bezier", "control-point-distances": "data(bend)", "control-point-weights": 0.5 } },
  { selector: "edge[?undirected]", style: { "target-arrow-shape": "none" } },
  { selector: "edge:selected", style: { opacity: 1, "line-outline-width": 2, "line-outline-color": "#1e293b" } },
  // Folds (js/fold.js): the units behind a folded unit are hidden; the unit shows their count.
  { selector: ".fold-hidden", style: { display: "none" } },
  { selector: "node.subtree-folded", style: { label: "data(foldedLabel)", "border-width": 3, "border-color": "#0f172a", "border-style": "double", "font-weight": "bold" } },
];

// The layered drawing's extensions: ELK's layered algorithm (elkjs, through cytoscape-elk) and
// cytoscape-expand-collapse, vendored UMD builds loaded as classic scripts on first use (ELK is
// 1.6 MB that no other page needs).
let layeredReady = null;
const ELK_TIMEOUT_MS = 15000;

function layeredExtensions() {
  const load = (name) => new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = new URL(`../vendor/${name}`, import.meta.url).href;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`cannot load vendor/${name}`));
    document.head.append(s);
  });
  if (!layeredReady) {
    layeredReady = load("elk.bundled.js")
      .then(() => Promise.all([load("cytoscape-elk.js"), load("cytoscape-expand-collapse.js")]))
      .then(() => {
        cytoscape.use(window.cytoscapeElk);
        cytoscape.use(window.cytoscapeExpandCollapse);
      })
      .catch((err) => { layeredReady = null; throw err; });
  }
  return layeredReady;
}

const LAYER_STYLE = [
  // A unit's name only where it can be read: a fitted depth-2 drawing shows units, not 5 px
  // text (cytoscape rounds the zoom up to a power of two here: names show past 100%).
  { selector: "node", style: { "min-zoomed-font-size": 11 } },
  // A model layer's box: its units stacked in one column, its name on the axis above.
  { selector: "node[type = 'layer']", style: {
    "background-color": "#f1f5f9", "background-opacity": 0.5, "border-width": 2, "border-color": "#94a3b8",
    "border-style": "dashed", shape: "round-rectangle", label: "", padding: 10 } },
  // Folded: one node standing for the layer's units, with their count.
  { selector: "node.cy-expand-collapse-collapsed-node", style: {
    label: "data(folded)", "background-color": "#e2e8f0", "border-style": "solid", "border-color": "#64748b",
    // as tall as half its column was, as wide as a column (js/graph.js COLUMN)
    width: 64, height: "data(foldHeight)", "text-valign": "center", "text-halign": "center", "font-size": 13,
    "text-wrap": "wrap", "text-background-opacity": 0 } },
  // Several edges of one kind between a folded layer and one other node, merged: their count.
  { selector: "edge.cy-expand-collapse-collapsed-edge", style: {
    label: "data(label)", "font-size": 13, "font-weight": "bold", color: "#0f172a",
    "text-background-color": "#fff", "text-background-opacity": 0.85, "text-background-padding": 1 } },
];

/**
 * nodes: [{id, label, type: 'neuron'|'head', layer, center?}];
 * edges: [{source, target, kind, weight, undirected?}].
 * layout 'layers': one column per model layer, left to right as composition flows, each column
 * in the order ELK's layered algorithm gives it (each layer a box, its partition, so ELK orders
 * each column to cross fewer edges; inColumns below spaces them); each layer folds into one node with its
 * count, its edges merged, and unfolds again (js/fold.js: the buttons on the axis above, or
 * tapping its box). 'force' uses cytoscape's built-in force-directed cose layout. In both, a
 * unit with units reached only through it has a button that folds them into it.
 * Resolves to the cytoscape instance once it is laid out; `window.cy` is it.
 */
export async function drawNeighborhood(container, { nodes, edges }, { onNavigate, layout = "layers" } = {}) {
  const layered = layout === "layers";
  if (layered) await layeredExtensions();
  // Widths on each kind's own scale: a virtual weight of 12 must not thin every cosine to a hair.
  const maxW = new Map();
  for (const e of edges) maxW.set(e.kind, Math.max(maxW.get(e.kind) || 1e-9, Math.abs(e.weight ?? 0)));
  const layers = [...new Set(nodes.map((n) => n.layer ?? 0))].sort((a, b) => a - b);
  const column = new Map(nodes.map((n) => [n.id, layers.indexOf(n.layer ?? 0)]));
  const elements = [
    ...(layered ? layers.map((l) => ({
      group: "nodes",
      data: { id: layerId(l), type: "layer", layer: l, count: nodes.filter((n) => (n.layer ?? 0) === l).length },
    })) : []),
    ...nodes.map((n) => ({ group: "nodes", data: { ...n, ...(layered ? { parent: layerId(n.layer ?? 0) } : {}) } })),
    ...edges.map((e, i) => ({
      group: "edges",
      data: {
        id: `e${i}`, source: e.source, target: e.target, kind: e.kind, weight: e.weight,
        color: kindColor(e.kind), width: 1 + 6 * (Math.abs(e.weight ?? 0) / maxW.get(e.kind)),
        negative: (e.weight ?? 0) < 0, undirected: !!e.undirected,
        ...(layered ? bendFor(column.get(e.source), column.get(e.target), i) : {}),
      },
    })),
  ];
  const cy = cytoscape({
    container, elements, style: layered ? [...BASE_STYLE, ...LAYER_STYLE] : BASE_STYLE, minZoom: 0.05, maxZoom: 3,
    layout: layered ? { name: "null" }
      : { name: "cose", animate: false, randomize: false, nodeRepulsion: 8000, idealEdgeLength: 90, fit: true, padding: 30 },
  });
  live.add(cy);
  if (layered) {
    container.style.visibility = "hidden"; // not the pile of unplaced nodes while ELK works
    // Only edges between layers shape the layout: one inside a layer would split its column.
    const between = cy.edges().filter((e) => e.source().data("layer") !== e.target().data("layer"));
    const placed = await new Promise((resolve) => {
      // ELK reports a failure by never stopping (cytoscape-elk drops its rejection): after a
      // time limit, or an error, the units are placed in their layers' columns as they came.
      const timer = setTimeout(() => resolve(false), ELK_TIMEOUT_MS);
      try {
        const l = cy.nodes().union(between).layout({
          name: "elk", fit: false,
          nodeLayoutOptions: (n) => (n.isParent() ? { "elk.partitioning.partition": layers.indexOf(n.data("layer")) } : {}),
          elk: {
            algorithm: "layered", "elk.direction": "RIGHT", "elk.partitioning.activate": true,
            "elk.hierarchyHandling": "INCLUDE_CHILDREN", "elk.edgeRouting": "POLYLINE",
          },
        });
        l.one("layoutstop", () => { clearTimeout(timer); resolve(true); });
        l.run();
      } catch (err) {
        console.warn("ELK layout failed", err);
        clearTimeout(timer);
        resolve(false);
      }
    });
    if (!placed) console.warn("ELK did not place the graph: units drawn in plain columns by layer");
    inColumns(cy, column, placed);
    fitReadable(cy, cy.nodes("[?center]"));
    container.style.visibility = "";
  }
  setupFolds(container, cy, { layered });
  // Press and hold a unit (a phone has no hover): it is selected, which shows its fold button
  // (js/fold.js), and the tap that ends the press does not open it.
  let held = null;
  cy.on("taphold", "node[type != 'layer']", (evt) => {
    held = evt.target;
    cy.nodes(":selected").unselect();
    evt.target.select();
  });
  cy.on("tap", "node[type != 'layer']", (evt) => {
    if (held === evt.target) { held = null; return; }
    held = null;
    if (onNavigate) onNavigate(evt.target.data());
  });
  cy.on("mouseover", "node", () => { container.style.cursor = "pointer"; });
  cy.on("mouseout", "node", () => { container.style.cursor = ""; });
  window.cy = cy;
  return cy;
}

// ELK's layered algorithm orders each column to cross fewer edges; only that order is kept. Its
// coordinates give every long edge a slot in each column it passes, and the polyline router
// widens the gaps for steep edges: a depth-2 neighbourhood of SmolLM2 (29 layers, 497 edges) was
// 12,952 × 6,025, fitted at zoom 0.08 (units 1.5 px at 1400 px). cytoscape draws the edges
// itself, so the units go in plain columns, COLUMN apart, ROW apart in ELK's order (as they came
// when ELK failed), each column centred: 2,300 × 700 for the same graph.
const COLUMN = 80;
const ROW = 34;

function inColumns(cy, column, ordered) {
  const cols = new Map();
  for (const n of cy.nodes("[type != 'layer']")) {
    const c = column.get(n.id()) ?? 0;
    if (!cols.has(c)) cols.set(c, []);
    cols.get(c).push(n);
  }
  const pos = new Map();
  for (const [c, list] of cols) {
    if (ordered) list.sort((a, b) => a.position("y") - b.position("y"));
    list.forEach((n, row) => pos.set(n.id(), { x: c * COLUMN, y: (row - (list.length - 1) / 2) * ROW }));
  }
  cy.nodes("[type != 'layer']").layout({ name: "preset", fit: false, positions: (n) => pos.get(n.id()) }).run();
}

// Fitted, but never so far out that a unit (18 px) is drawn under MIN_UNIT_PX: a wider drawing
// (a phone, many layers) opens on the centre unit at that zoom and is panned to see the rest.
const MIN_UNIT_PX = 9;

function fitReadable(cy, centre) {
  cy.fit(undefined, 30);
  const least = MIN_UNIT_PX / 18;
  if (cy.zoom() < least) {
    cy.zoom(least);
    cy.center(centre.nonempty() ? centre : undefined);
  }
}

// In the layered drawing a straight edge that skips a column, or joins two nodes of one column,
// would run through the nodes between: bend it, alternating sides.
function bendFor(colA, colB, i) {
  const side = i % 2 ? 1 : -1;
  if (colA === undefined || colB === undefined) return { curved: false, bend: 0 };
  if (colA === colB) return { curved: true, bend: side * 40 };
  const cols = Math.abs(colA - colB);
  // capped: an edge across 20 columns would arc far past the drawing (and widen its fit)
  return cols > 1 ? { curved: true, bend: side * Math.min(20 * cols, 140) } : { curved: false, bend: 0 };
}

const PATTERN_STYLE = [
  {
    selector: "node",
    style: {
      label: "data(label)", shape: "round-rectangle", width: "data(w)", height: 24,
      "font-size": 12, "text-valign": "center", "text-halign": "center", "font-family": "ui-monospace, monospace",
      "background-color": "#e2e8f0", "border-width": 1, "border-color": "#94a3b8", color: "#0f172a",
    },
  },
  { selector: "node[role = 'activating']", style: { "background-color": "data(bg)", "border-color": "#b91c1c", color: "#fff" } },
  { selector: "node[role = 'important']", style: { "background-color": "#dbeafe", "border-color": "#2563eb" } },
  { selector: "node[role = 'ignore']", style: { "background-color": "#f1f5f9", "border-style": "dashed", color: "#64748b" } },
  { selector: "node[?isEnd]", style: { "border-width": 3 } },
  // Stored edges point back into the context; the arrow shows reading order, towards the activating token.
  { selector: "edge", style: { width: 1.5, "line-color": "#94a3b8", "source-arrow-shape": "triangle", "source-arrow-color": "#94a3b8", "curve-style": "bezier" } },
];

function patternLabel(token) {
  return JSON.stringify(token ?? "").slice(1, -1) || "·";
}

/**
 * N2G pattern graph: nodes [{id, token, depth, role, activation, isEnd}], edges [{source, target}]
 * (from a node to the node one token further back). Drawn right to left: the activating token
 * on the right, context tokens to its left, as one reads the text.
 */
export function drawPattern(container, { nodes, edges }) {
  const byDepth = new Map();
  for (const n of nodes) {
    const d = n.depth ?? 0;
    if (!byDepth.has(d)) byDepth.set(d, []);
    byDepth.get(d).push(n);
  }
  const pos = {};
  for (const [d, list] of byDepth) {
    list.sort((a, b) => String(a.id).localeCompare(String(b.id)));
    list.forEach((n, row) => { pos[n.id] = { x: -d * 130, y: (row - (list.length - 1) / 2) * 40 }; });
  }
  const elements = [
    ...nodes.map((n) => ({
      group: "nodes",
      data: {
        id: n.id, label: patternLabel(n.token), role: n.role, isEnd: !!n.isEnd,
        // Fixed-width font: size the box from the label (cytoscape's width: "label" is deprecated).
        w: 16 + 7.5 * patternLabel(n.token).length,
        bg: `rgba(220, 38, 38, ${(0.25 + 0.6 * Math.min(1, Math.max(0, n.activation ?? 1))).toFixed(2)})`,
      },
    })),
    ...edges.map((e, i) => ({ group: "edges", data: { id: `p${i}`, source: e.source, target: e.target } })),
  ];
  const cy = cytoscape({
    container, elements, style: PATTERN_STYLE, userZoomingEnabled: true,
    layout: { name: "preset", positions: (node) => pos[node.id()], fit: true, padding: 20 },
    maxZoom: 1.6,
  });
  live.add(cy);
  window.cyPattern = cy;
  return cy;
}

/**
 * An attribution graph with a preset layout: x by token position, y by layer (tokens at the
 * bottom, the target logit on top); edge width by |effect|, red raises and blue lowers.
 *   drawAttribution(el, {nodes, edges}, {onHover: (text) => …, onNavigate: (node) => …, describe})
 */
export function drawAttribution(container, { nodes, edges }, { onHover, onNavigate, describe = (n) => n.id } = {}) {
  // Rows: tokens, then each layer that has neurons, then the logit; a layer's band is as tall as
  // its most crowded (position, layer) cell needs, PER_ROW neurons side by side.
  const PER_ROW = 5, COL = 150, STEP = 26, BAND = 46;
  const rowOf = (n) => (n.kind === "token" ? -1 : n.kind === "logit" ? Infinity : n.layer);
  const cells = new Map();
  for (const n of nodes) {
    const cell = `${n.position}/${rowOf(n)}`;
    cells.set(cell, (cells.get(cell) || 0) + 1);
  }
  const rows = [...new Set(nodes.map(rowOf))].sort((a, b) => a - b);
  const base = new Map();
  let y = 0;
  for (const r of rows) {
    base.set(r, y);
    const most = Math.max(...nodes.filter((n) => rowOf(n) === r).map((n) => cells.get(`${n.position}/${r}`)));
    y -= BAND + Math.ceil(most / PER_ROW) * STEP;
  }
  const seen = new Map();
  const place = (n) => {
    const r = rowOf(n);
    const cell = `${n.position}/${r}`;
    const k = seen.get(cell) || 0;
    seen.set(cell, k + 1);
    const inRow = Math.min(PER_ROW, cells.get(cell));
    return { x: n.position * COL + ((k % PER_ROW) - (inRow - 1) / 2) * STEP, y: base.get(r) - Math.floor(k / PER_ROW) * STEP };
  };
  const maxW = Math.max(1e-9, ...edges.map((e) => Math.abs(e.weight)));
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const cy = cytoscape({
    container,
    elements: [
      ...nodes.map((n) => ({
        data: {
          id: n.id, type: n.kind, node: n,
          label: n.kind === "neuron" ? `L${n.layer}/${n.index}` : n.kind === "logit" ? `→ ${n.token}` : n.token,
        },
        position: place(n),
      })),
      ...edges.map((e, i) => ({
        data: {
          id: `e${i}`, source: e.source, target: e.target, weight: e.weight,
          width: 0.5 + 5 * Math.abs(e.weight) / maxW, color: e.weight >= 0 ? "#dc2626" : "#2563eb",
        },
      })),
    ],
    layout: { name: "preset" },
    style: [
      ...BASE_STYLE,
      { selector: "node[type = 'token']", style: { shape: "round-rectangle", "background-color": "#e2e8f0", width: 30 } },
      { selector: "node[type = 'logit']", style: { shape: "star", "background-color": "#dc2626", width: 26, height: 26 } },
      { selector: "edge", style: { "curve-style": "straight", opacity: 0.55 } },
    ],
    wheelSensitivity: 0.3,
  });
  cy.on("mouseover", "node", (ev) => onHover && onHover(describe(ev.target.data("node"))));
  cy.on("mouseover", "edge", (ev) => {
    const d = ev.target.data();
    onHover && onHover(`${describe(byId.get(d.source))} → ${describe(byId.get(d.target))}: effect ${d.weight.toFixed(4)}`);
  });
  cy.on("tap", "node", (ev) => onNavigate && onNavigate(ev.target.data("node")));
  cy.fit(undefined, 20);
  live.add(cy);
  window.cyAttribution = cy;
  return cy;
}
