// Graph drawing with cytoscape.js (vendored ES module, no CDN): the weighted neighbourhood of a
// neuron and the N2G pattern graph.
//   const cy = drawNeighborhood(el, {nodes, edges, center}, {onNavigate: (node) => …});
//   window.cy.nodes().length   // tests read the live instance

import cytoscape from "../vendor/cytoscape.esm.min.js";

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
];

/**
 * nodes: [{id, label, type: 'neuron'|'head', layer, center?}];
 * edges: [{source, target, kind, weight, undirected?}].
 * layout 'layers' places nodes in columns by model layer (composition flows left to right);
 * 'force' uses cytoscape's built-in force-directed cose layout.
 */
export function drawNeighborhood(container, { nodes, edges }, { onNavigate, layout = "layers" } = {}) {
  // Widths on each kind's own scale: a virtual weight of 12 must not thin every cosine to a hair.
  const maxW = new Map();
  for (const e of edges) maxW.set(e.kind, Math.max(maxW.get(e.kind) || 1e-9, Math.abs(e.weight ?? 0)));
  const pos = layout === "layers" ? layerPositions(nodes) : null;
  const elements = [
    ...nodes.map((n) => ({ group: "nodes", data: { ...n } })),
    ...edges.map((e, i) => ({
      group: "edges",
      data: {
        id: `e${i}`, source: e.source, target: e.target, kind: e.kind, weight: e.weight,
        color: kindColor(e.kind), width: 1 + 6 * (Math.abs(e.weight ?? 0) / maxW.get(e.kind)),
        negative: (e.weight ?? 0) < 0, undirected: !!e.undirected,
        ...bendFor(pos, e, i),
      },
    })),
  ];
  const cy = cytoscape({
    container, elements, style: BASE_STYLE, minZoom: 0.1, maxZoom: 3,
    layout: pos
      ? { name: "preset", positions: (node) => pos[node.id()], fit: true, padding: 36 }
      : { name: "cose", animate: false, randomize: false, nodeRepulsion: 8000, idealEdgeLength: 90, fit: true, padding: 30 },
  });
  if (pos) layerAxis(container, cy, pos, nodes);
  cy.on("tap", "node", (evt) => onNavigate && onNavigate(evt.target.data()));
  cy.on("mouseover", "node", () => { container.style.cursor = "pointer"; });
  cy.on("mouseout", "node", () => { container.style.cursor = ""; });
  live.add(cy);
  window.cy = cy;
  return cy;
}

/**
 * The by-layer layout's column headings ("layer 3") along the top of the drawing, kept above
 * their columns as the graph is panned and zoomed. An HTML overlay, not graph nodes: the drawn
 * nodes stay exactly the API's nodes.
 */
function layerAxis(container, cy, pos, nodes) {
  const cols = new Map();
  for (const n of nodes) if (pos[n.id] && !cols.has(n.layer ?? 0)) cols.set(n.layer ?? 0, pos[n.id].x);
  if (getComputedStyle(container).position === "static") container.style.position = "relative";
  const axis = document.createElement("div");
  axis.className = "layer-axis";
  const labels = [...cols].sort((a, b) => a[0] - b[0]).map(([layer, x]) => {
    const el = document.createElement("span");
    el.className = "layer-label";
    el.dataset.layer = String(layer);
    el.textContent = `layer ${layer}`;
    axis.append(el);
    return [el, x];
  });
  container.append(axis);
  const place = () => {
    const z = cy.zoom();
    const p = cy.pan();
    for (const [el, x] of labels) el.style.left = `${x * z + p.x}px`;
  };
  cy.on("viewport resize", place);
  cy.one("render", place);
  place();
}

// In the by-layer layout a straight edge that skips a column, or joins two nodes of one column,
// would run through the nodes between: bend it, alternating sides.
function bendFor(pos, e, i) {
  if (!pos || !pos[e.source] || !pos[e.target]) return { curved: false, bend: 0 };
  const a = pos[e.source];
  const b = pos[e.target];
  const side = i % 2 ? 1 : -1;
  if (a.x === b.x) return { curved: true, bend: side * (24 + 0.3 * Math.abs(a.y - b.y)) };
  const cols = Math.round(Math.abs(a.x - b.x) / a.gap);
  if (cols > 1) return { curved: true, bend: side * 30 * cols };
  return { curved: false, bend: 0 };
}

/** Columns by model layer (composition flows left to right), the centre mid-column. */
function layerPositions(nodes) {
  const byLayer = new Map();
  for (const n of nodes) {
    const l = n.layer ?? 0;
    if (!byLayer.has(l)) byLayer.set(l, []);
    byLayer.get(l).push(n);
  }
  const layers = [...byLayer.keys()].sort((a, b) => a - b);
  const tallest = Math.max(...[...byLayer.values()].map((v) => v.length));
  const step = 46;
  // Spread columns so the drawing is about twice as wide as it is tall, like its container.
  const gap = Math.max(170, layers.length > 1 ? (2 * tallest * step) / (layers.length - 1) : 170);
  const pos = {};
  layers.forEach((l, col) => {
    const list = byLayer.get(l).sort((a, b) => (b.center ? 1 : 0) - (a.center ? 1 : 0) || (a.type === b.type ? (a.index ?? 0) - (b.index ?? 0) : a.type === "head" ? 1 : -1));
    list.forEach((node, row) => {
      // Alternate above and below the middle line so the centre stays in the middle.
      const off = row === 0 ? 0 : (row % 2 ? 1 : -1) * Math.ceil(row / 2);
      pos[node.id] = { x: col * gap, y: off * step + (col % 2 ? step / 2 : 0), gap };
    });
  });
  return pos;
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
