// Folding a drawn neighbourhood (js/graph.js draws it), so a depth 2–3 drawing reads a part at a
// time:
//  - a model layer folds into one node counting its units (cytoscape-expand-collapse; layered
//    drawing only), and its edges to one other node merge into one edge per kind and direction
//    (the library's edge collapsing) that carries their count, summed and strongest weight;
//  - a unit folds the units reached from the centre only through it, its exclusive descendants
//    (a BFS from the centre with the unit left out does not reach them), in either layout.
// What is folded is state; each change unmerges every merged edge, applies the state and merges
// again, so merged edges never nest and unfolding always gives the drawn edges back.
//   const folds = setupFolds(container, cy, { layered: true });
//   folds.foldLayer(2, true); folds.foldSubtree("m/1/5", true);

import { fmt } from "./dom.js";

export const layerId = (layer) => `layer:${layer}`;
const FOLDED = "cy-expand-collapse-collapsed-node"; // the library's class for a folded layer
const MERGED = "cy-expand-collapse-collapsed-edge"; // … and for an edge standing for several

/**
 * Units reached from the centre only through u, for each unit u that has any: Map(id -> nodes).
 * Only cut vertices (cytoscape's Hopcroft–Tarjan) can have them; edges count both ways, as the
 * neighbourhood is walked both ways.
 */
export function exclusiveDescendants(cy) {
  const out = new Map();
  const centre = cy.nodes("[?center]");
  if (centre.empty()) return out;
  const units = cy.nodes("[type != 'layer']");
  const graph = units.union(cy.edges());
  const reached = (eles) => {
    const seen = new Set();
    eles.bfs({ roots: centre, directed: false, visit: (v) => { seen.add(v.id()); } });
    return seen;
  };
  const all = reached(graph);
  for (const u of graph.hopcroftTarjanBiconnected().cut) {
    if (u.same(centre)) continue;
    const seen = reached(graph.not(u.union(u.connectedEdges())));
    const behind = units.filter((n) => !n.same(u) && all.has(n.id()) && !seen.has(n.id()));
    if (behind.nonempty()) out.set(u.id(), behind);
  }
  return out;
}

/** The edge's description for the hover line: its ends, kind and weight, or what it merges. */
export function edgeText(edge) {
  const name = (n) => n.data("label") ?? `layer ${n.data("layer")} (${n.data("count")} units)`;
  const d = edge.data();
  const ends = `${name(edge.source())} → ${name(edge.target())}`;
  if (!edge.hasClass(MERGED)) return `${ends}: ${d.kind} ${fmt(d.weight, 4)}`;
  return `${ends}: ${d.count} ${d.kind} edges, summed weight ${fmt(d.weight, 4)}, strongest ${fmt(d.strongest, 4)}`;
}

/**
 * Wire the folds of a drawn neighbourhood: the layer axis (layered only) and a fold button on
 * every unit that has exclusive descendants. Returns {foldLayer, foldSubtree, descendants}.
 */
export function setupFolds(container, cy, { layered }) {
  const state = { layers: new Set(), subtrees: new Set() };
  const descendants = exclusiveDescendants(cy);
  const units = cy.nodes("[type != 'layer']");
  const edges = cy.edges();
  // Each edge's own ends: a folded layer moves the edge onto its node.
  const ends = new Map(edges.map((e) => [e.id(), [e.source().id(), e.target().id()]]));
  const api = layered ? cy.expandCollapse({
    // zIndex: its (unused) cue canvas stays under the fold buttons, which must take clicks
    layoutBy: null, fisheye: false, animate: false, undoable: false, cueEnabled: false, zIndex: 1,
    groupEdgesOfSameTypeOnCollapse: true, edgeTypeInfo: "kind", allowNestedEdgeCollapse: false,
  }) : null;

  const apply = () => {
    if (api) api.expandEdges(cy.edges(`.${MERGED}`));
    const hidden = new Set();
    for (const id of state.subtrees) for (const n of descendants.get(id)) hidden.add(n.id());
    cy.batch(() => {
      // Every unit and edge is kept, also those a folded layer holds (out of the graph for now).
      for (const n of units) n.toggleClass("fold-hidden", hidden.has(n.id()));
      for (const e of edges) e.toggleClass("fold-hidden", ends.get(e.id()).some((id) => hidden.has(id)));
      for (const id of descendants.keys()) units.getElementById(id).toggleClass("subtree-folded", state.subtrees.has(id));
    });
    if (api) {
      for (const box of cy.nodes("[type = 'layer']")) {
        const fold = state.layers.has(box.data("layer"));
        if (fold && api.isCollapsible(box)) api.collapse(box);
        else if (!fold && api.isExpandable(box)) api.expand(box);
      }
      merge(cy, api);
    }
    place();
  };

  const overlay = document.createElement("div");
  overlay.className = "fold-overlay";
  if (getComputedStyle(container).position === "static") container.style.position = "relative";
  container.append(overlay);
  // A press on a button is not a tap on the node under it (cytoscape listens on its container),
  // nor is pointing at one a hover on another unit (which would quiet the button: fold.js below).
  for (const type of ["mousedown", "mousemove", "touchstart", "pointerdown"]) overlay.addEventListener(type, (e) => e.stopPropagation());
  const buttons = [];
  if (layered) buttons.push(...layerAxis(overlay, cy, state, foldLayer));
  buttons.push(...subtreeButtons(overlay, cy, descendants, state, foldSubtree));
  const place = () => { for (const b of buttons) b(); };
  cy.on("viewport resize position", place);
  cy.one("render", place);
  if (layered) {
    for (const box of cy.nodes("[type = 'layer']")) {
      box.data("folded", `layer ${box.data("layer")}\n${box.data("count")} unit${box.data("count") === 1 ? "" : "s"}`);
      box.data("foldHeight", Math.max(60, box.height() / 2));
    }
    cy.on("tap", "node[type = 'layer']", (evt) => {
      const layer = evt.target.data("layer");
      foldLayer(layer, !state.layers.has(layer));
    });
  }
  place();

  function foldLayer(layer, fold = true) {
    if (!layered) return;
    if (fold) state.layers.add(layer);
    else state.layers.delete(layer);
    apply();
  }
  function foldSubtree(id, fold = true) {
    if (!descendants.has(id)) return;
    if (fold) state.subtrees.add(id);
    else state.subtrees.delete(id);
    apply();
  }
  return { foldLayer, foldSubtree, descendants };
}

// One merged edge per (other node, kind, direction) of each folded layer's drawn edges; an
// undirected kind (correlated, similar) has no direction, so its two ways merge too.
function merge(cy, api) {
  const groups = new Map();
  for (const e of cy.nodes(`.${FOLDED}`).connectedEdges().not(".fold-hidden")) {
    let ends = [e.source().id(), e.target().id()];
    if (e.data("undirected")) ends = ends.sort();
    const key = JSON.stringify([...ends, e.data("kind")]);
    groups.set(key, (groups.get(key) || cy.collection()).union(e));
  }
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    const members = group.toArray();
    const strongest = members.reduce((a, b) => (Math.abs(b.data("weight") ?? 0) > Math.abs(a.data("weight") ?? 0) ? b : a));
    const sum = members.reduce((s, e) => s + (e.data("weight") ?? 0), 0);
    const width = Math.min(9, 1 + Math.max(...members.map((e) => e.data("width"))));
    for (const m of api.collapseEdges(group).edges) {
      m.data({
        count: members.length, weight: sum, strongest: strongest.data("weight"), label: `×${members.length}`,
        color: strongest.data("color"), width, negative: sum < 0, undirected: strongest.data("undirected"),
      });
    }
  }
}

/**
 * The layered drawing's column headings, each a button folding its layer, above their columns.
 * Where columns are close the name shortens ("L12"; the full one is its aria-label), and where
 * even that would overlap a heading to its left the heading is left out (its box still folds
 * on a tap): at the fitted zoom a 29-layer drawing has 40 px a column.
 */
function layerAxis(overlay, cy, state, foldLayer) {
  const axis = document.createElement("div");
  axis.className = "layer-axis";
  overlay.append(axis);
  const layers = cy.nodes("[type = 'layer']").map((b) => b.data("layer")).sort((a, b) => a - b);
  const heads = layers.map((layer) => {
    const el = document.createElement("button");
    el.type = "button";
    el.className = "layer-label";
    el.dataset.layer = String(layer);
    el.title = `fold layer ${layer} into one node (again: unfold it)`;
    el.setAttribute("aria-label", `layer ${layer}: ${el.title}`);
    el.addEventListener("click", () => foldLayer(layer, !state.layers.has(layer)));
    axis.append(el);
    return { el, layer, box: cy.getElementById(layerId(layer)) };
  });
  return [() => {
    const xs = heads.map((h) => h.box.renderedPosition().x);
    const pitch = Math.min(Infinity, ...xs.slice(1).map((x, k) => x - xs[k]));
    const short = pitch < 64;
    for (const { el, layer } of heads) {
      el.textContent = short ? `L${layer}` : `layer ${layer}`;
      el.setAttribute("aria-pressed", String(state.layers.has(layer)));
      el.hidden = false;
    }
    const widths = heads.map(({ el }) => el.offsetWidth); // one layout for all, not one each
    let right = -Infinity;
    heads.forEach(({ el }, k) => {
      // over its column, kept whole inside the drawing (the first column's at a phone's width)
      const half = widths[k] / 2;
      const x = Math.min(Math.max(xs[k], half), cy.width() - half);
      el.hidden = xs[k] < 0 || xs[k] > cy.width() || x - half < right + 2;
      if (el.hidden) return;
      el.style.left = `${x}px`;
      right = x + half;
    });
  }];
}

/**
 * A button on each unit with exclusive descendants: "−" folds them into it, "+N" unfolds them.
 * A fitted depth-2 drawing has dozens of these over units drawn 10 px wide, where they would
 * cover the picture, so a "−" is shown only where it is wanted: its unit drawn at least
 * SHOW_AT_PX (zoomed in), hovered, or selected (a press and hold on a phone, js/graph.js), or
 * the button focused (Tab still reaches every one: a quiet button is transparent, not gone, and
 * takes no pointer). A "+N" always shows: it is the only sign of the hidden units.
 */
const SHOW_AT_PX = 24;

function subtreeButtons(overlay, cy, descendants, state, foldSubtree) {
  let hovered = null;
  let leave = null;
  const rest = () => { for (const b of buttons) b(); };
  cy.on("mouseover", "node", (evt) => { clearTimeout(leave); hovered = evt.target.id(); rest(); });
  // leaving a unit for its button (which lies over the unit's corner) keeps the button
  const away = () => {
    clearTimeout(leave);
    leave = setTimeout(() => { if (!overlay.querySelector(".subtree-fold:hover")) { hovered = null; rest(); } }, 250);
  };
  cy.on("mouseout", "node", away);
  cy.container().addEventListener("mouseleave", away); // out of the drawing at once: no mouseout
  cy.on("select unselect", "node", rest);
  const buttons = [...descendants].map(([id, behind]) => {
    const node = cy.getElementById(id); // kept: a folded layer takes it out of the graph for a while
    const n = behind.length;
    const what = `the ${n} unit${n === 1 ? "" : "s"} reached only through ${node.data("label")}`;
    node.data("foldedLabel", `${node.data("label")} (+${n})`);
    const el = document.createElement("button");
    el.type = "button";
    el.className = "subtree-fold";
    el.dataset.node = id;
    el.dataset.count = String(n);
    el.addEventListener("click", () => foldSubtree(id, !state.subtrees.has(id)));
    el.addEventListener("mouseleave", away);
    overlay.append(el);
    return () => {
      const folded = state.subtrees.has(id);
      el.textContent = folded ? `+${n}` : "−";
      el.setAttribute("aria-pressed", String(folded));
      el.setAttribute("aria-label", `${folded ? "unfold" : "fold"} ${what}`);
      el.title = el.getAttribute("aria-label");
      // Gone with its folded layer or a folded subtree, or panned out of view: no button.
      // style() first: it applies a class change still pending, which visible()'s cache
      // misses until the next frame (cytoscape 3.34: a folded unit read as visible)
      const shown = !node.removed() && node.style("display") !== "none" && node.visible();
      const p = shown && node.renderedPosition();
      const x = shown && p.x + node.renderedWidth() / 2;
      const y = shown && p.y; // beside its unit: a column's units lie above and below
      el.hidden = !shown || x < 0 || y < 0 || x > cy.width() || y > cy.height();
      if (el.hidden) return;
      Object.assign(el.style, { left: `${x}px`, top: `${y}px` });
      el.classList.toggle("quiet", !(folded || hovered === id || node.selected() || node.renderedWidth() >= SHOW_AT_PX));
    };
  });
  return buttons;
}
