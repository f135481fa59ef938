// Every GraphQL operation the UI sends, and the mapping of answers to the plain objects the
// pages render. The operations follow graphql/schema.graphql (the API contract).
//   const n = await neuron("synth", 1, 3);   // {key, stats, histogram, maxExamples, ...}

import { ApiError, gql } from "./api.js";

const EXAMPLE_PAGE = `fragment ExamplePage on ExampleConnection {
  totalCount pageInfo { hasNextPage endCursor }
  edges { node { key rank tokens activations maxActivation minActivation pivot dataIndex bin binLow binHigh binCount } }
}`;

// The neuron page's operation is a file of graphql/ (served at /operations/): the server
// pre-renders it for every neuron (`neurograph pages`), and a request meets that cache only
// with the same operation and the same variables. Its lists' next pages are another file.
const DEFAULT_EXAMPLES = 20; // the operation's default $first
const operations = new Map();

function operation(name) {
  const url = `/operations/${name}.graphql`;
  if (!operations.has(name)) {
    operations.set(name, fetch(url).then((r) => {
      if (!r.ok) throw new ApiError(`cannot load ${url}: ${r.status} ${r.statusText}`);
      return r.text();
    }).catch((err) => {
      operations.delete(name); // try again next time
      throw err instanceof ApiError ? err : new ApiError(`cannot load ${url} (${err.message})`);
    }));
  }
  return operations.get(name);
}

// The neuron page's connectivity lists, by the field each is (and the flag that picks it in
// neuron_connections.graphql).
export const CONNECTION_FIELDS = ["inputs", "outputs", "correlated", "heads", "similar", "attributes", "attributedBy"];
const CONN_PAGE = 20; // the neuron page operation's $conn

/** The next page of one of a neuron's connectivity lists: {items, next, total}. */
export async function moreConnections(modelName, layer, index, field, after, first = CONN_PAGE) {
  if (!CONNECTION_FIELDS.includes(field)) throw new ApiError(`no connection list ${field}`);
  const d = await gql(await operation("neuron_connections"), { model: modelName, layer, index, first, after, [field]: true });
  return connectionPage(field, d.neuron[field]);
}

function connectionPage(field, conn) {
  return {
    items: field === "heads" ? conn.edges.map(headEdge) : conn.edges.map(neuronEdge),
    next: conn.pageInfo.hasNextPage ? conn.pageInfo.endCursor : null,
    total: conn.totalCount,
  };
}

/** The next page of a neuron's examples of one kind ("MAX" | "MIN" | "RANDOM" | "QUANTILE") after a cursor. */
export async function moreExamples(modelName, layer, index, kind, after, first = 20) {
  const d = await gql(`query MoreExamples($model: String!, $layer: Int!, $index: Int!, $kind: ExampleKind!, $after: String, $first: Int!) {
    neuron(model: $model, layer: $layer, index: $index) { examples(kind: $kind, first: $first, after: $after) { ...ExamplePage } } }
  ${EXAMPLE_PAGE}`, { model: modelName, layer, index, kind, after, first });
  return examplePage(d.neuron.examples);
}

function examplePage(conn) {
  return {
    items: conn.edges.map((e) => e.node), total: conn.totalCount,
    next: conn.pageInfo.hasNextPage ? conn.pageInfo.endCursor : null,
  };
}

export async function models() {
  const d = await gql(`query Models { models { name nLayers dMlp nHeads dVocab actFn source dataset nTokens neuronCount } }`);
  return d.models.map((m) => ({ ...m, nNeurons: m.neuronCount }));
}

/**
 * A model with the numeric properties its neurons carry (`stats`: built-in statistics first, in
 * the API's order, then imported columns), each with how many neurons have it and its range.
 */
export async function model(name) {
  const d = await gql(`query Model($name: String!) { model(name: $name) {
    name nLayers dMlp dModel nHeads dVocab actFn source dataset nTokens neuronCount n2gCoverage { done total sweepBlocksDone sweepBlocks }
    layers { layer nNeurons } availableStats { name stat count min max } } }`, { name });
  if (!d.model) return null;
  const avail = d.model.availableStats;
  const builtin = avail.filter((s) => s.stat);
  const stats = [...builtin, ...avail.filter((s) => !s.stat)];
  // The default ranking is a built-in statistic; imported columns are there to pick.
  const defaultStat = (builtin.find((s) => s.name === "interest") || builtin[0] || {}).name || null;
  return { ...d.model, stats: stats.map((s) => s.name), statInfo: Object.fromEntries(stats.map((s) => [s.name, s])), defaultStat };
}

/** A model's attention heads (of one layer when given): [{key, layer, head}]. */
export async function heads(modelName, layer = null) {
  const d = await gql(`query Heads($name: String!, $layer: Int) { model(name: $name) { heads(layer: $layer) { key layer head } } }`,
    { name: modelName, layer });
  return d.model.heads;
}

/** An attention head's page: the neurons it reads from (Q/K/V) and writes into (O), and its layer's heads. */
export async function head(modelName, layer, headIndex, first = 20) {
  const edges = `totalCount edges { kind weight outgoing node { key model layer index interest } }`;
  const d = await gql(`query Head($model: String!, $layer: Int!, $head: Int!, $first: Int!) {
    head(model: $model, layer: $layer, head: $head) { key layer head
      reads: neurons(kinds: ["Q", "K", "V"], first: $first) { ${edges} }
      writes: neurons(kinds: ["O"], first: $first) { ${edges} } }
    model(name: $model) { nHeads heads(layer: $layer) { key layer head } } }`,
  { model: modelName, layer, head: headIndex, first });
  const rows = (c) => c.edges.map((e) => ({ ...neuronLink(e.node), kind: e.kind, weight: e.weight, interest: e.node.interest }));
  return {
    key: d.head.key, layer: d.head.layer, head: d.head.head, layerHeads: d.model.heads,
    reads: rows(d.head.reads), writes: rows(d.head.writes),
    totals: { reads: d.head.reads.totalCount, writes: d.head.writes.totalCount },
  };
}

/** The hash of a head's page. */
export const headHref = (modelName, layer, headIndex) => `#/head/${encodeURIComponent(modelName)}/${layer}/${headIndex}`;

/** Each layer of a model with its top `first` neurons by a stat (property name). */
export async function layerTops(modelName, stat, descending, first = 3) {
  const d = await gql(`query LayerTops($name: String!, $prop: String!, $dir: SortDirection!, $first: Int!) {
    model(name: $name) { layers { layer nNeurons interesting(prop: $prop, direction: $dir, first: $first) {
      key model layer index props } } } }`,
  { name: modelName, prop: stat, dir: descending ? "DESC" : "ASC", first });
  return d.model.layers.map((l) => ({
    layer: l.layer, nNeurons: l.nNeurons,
    top: l.interesting.map((n) => ({ ...neuronLink(n), value: n.props[stat] })),
  }));
}

/** The neurons of a model (or one layer) ranked by a numeric property (a statistic or an imported column). */
export async function interestingNeurons(modelName, layer, stat, descending, first = 50) {
  const d = await gql(`query Interesting($name: String!, $layer: Int, $prop: String!, $dir: SortDirection!, $first: Int!) {
    model(name: $name) { interesting(prop: $prop, direction: $dir, first: $first, layer: $layer) {
      key model layer index props explanations { text } } } }`,
  { name: modelName, layer, prop: stat, dir: descending ? "DESC" : "ASC", first });
  return d.model.interesting.map((n) => ({
    key: n.key, model: n.model, layer: n.layer, index: n.index,
    stats: scalarProps(n.props),
    explanation: n.explanations && n.explanations[0] ? n.explanations[0].text : "",
  }));
}

/** A model's (or layer's) neurons in (layer, index) order: for models with no statistics yet. */
export async function neuronsInOrder(modelName, layer, first = 50) {
  const d = await gql(`query NeuronsInOrder($model: String!, $layer: Int, $first: Int!) {
    neurons(model: $model, layer: $layer, first: $first) { edges { node {
      key model layer index props explanations { text } } } } }`, { model: modelName, layer, first });
  return d.neurons.edges.map(({ node: n }) => ({
    key: n.key, model: n.model, layer: n.layer, index: n.index, stats: scalarProps(n.props),
    explanation: n.explanations && n.explanations[0] ? n.explanations[0].text : "",
  }));
}

function scalarProps(props) {
  const out = {};
  for (const [k, v] of Object.entries(props || {})) {
    if (typeof v === "number" && !["layer", "index"].includes(k)) out[k] = v;
  }
  return out;
}

const neuronEdge = (e) => ({ kind: e.kind, weight: e.weight, ...neuronLink(e.node) });
const headEdge = (e) => ({
  kind: e.kind, weight: e.weight, key: e.node.key, label: `L${e.node.layer}H${e.node.head}`,
  href: headHref(e.node.model, e.node.layer, e.node.head),
  note: e.outgoing ? "neuron → head" : "head → neuron",
});

const neuronLink = (n) => ({
  key: n.key, model: n.model, layer: n.layer, index: n.index,
  label: `L${n.layer}/N${n.index}`, href: `#/neuron/${encodeURIComponent(n.model)}/${n.layer}/${n.index}`,
});

const layerSizeCache = new Map();
/** Each layer's number of neurons, Map(layer -> n), fetched once per model. */
export function layerSizes(modelName) {
  if (!layerSizeCache.has(modelName)) {
    // A layer stored without its size takes the model's neurons per layer (null: unknown).
    const p = gql(`query LayerSizes($name: String!) { model(name: $name) { dMlp layers { layer nNeurons } } }`, { name: modelName })
      .then((d) => new Map((d.model ? d.model.layers : []).map((l) => [l.layer, l.nNeurons ?? d.model.dMlp ?? null])));
    p.catch(() => layerSizeCache.delete(modelName));
    layerSizeCache.set(modelName, p);
  }
  return layerSizeCache.get(modelName);
}

/** A neuron's whole page. */
export async function neuron(modelName, layer, index, { examples = 20 } = {}) {
  // An unknown model or neuron is an API error with a clear message: let the page show it.
  const vars = { model: modelName, layer, index };
  if (examples !== DEFAULT_EXAMPLES) vars.first = examples;
  const d = await gql(await operation("neuron_page"), vars);
  const n = d.neuron;
  const stats = {
    interest: n.interest, mean: n.stats.mean, var: n.stats.var, skew: n.stats.skew, kurt: n.stats.kurt,
    max: n.stats.max, min: n.stats.min, frac_active: n.stats.fracActive,
  };
  // Quantiles are named by their level as percentiles ("p0.1", "p50", "p99.9"); a source that
  // stored none gets them numbered ("quantile 1 of 11"), never a name that claims a level.
  const levels = n.stats.quantileLevels || [];
  const qs = n.stats.quantiles || [];
  const quantiles = qs.map((q, i) => {
    const lvl = levels.length === qs.length ? levels[i] : null;
    const label = lvl !== null && lvl !== undefined ? `p${+(lvl * 100).toFixed(3)}` : `quantile ${i + 1}/${qs.length}`;
    stats[label] = q;
    return { x: q, label, level: lvl ?? null };
  });
  for (const [k, v] of Object.entries(n.pattern && n.pattern.scores ? n.pattern.scores : {})) {
    if (typeof v === "number") stats[k] = v;
  }
  Object.assign(stats, { degree: n.topology.degree, strength: n.topology.strength, betweenness: n.topology.betweenness });
  // Every other number stored on the neuron (importers keep their sources' columns, e.g.
  // Universal Neurons' max_corr or vocab_kurt): shown apart from the core statistics.
  const shownProps = new Set(["layer", "index", "community", "interest", "mean", "var", "skew", "kurt", "max", "min",
    "frac_active", "degree", "strength", "betweenness", ...Object.keys(stats)]);
  const moreProps = {};
  for (const [k, v] of Object.entries(n.props || {})) {
    if (typeof v === "number" && !shownProps.has(k)) moreProps[k] = v;
  }
  const lists = Object.fromEntries(CONNECTION_FIELDS.map((f) => [f, connectionPage(f, n[f])]));
  return {
    key: n.key, model: n.model, layer: n.layer, index: n.index, role: n.role, community: n.community,
    pageSize: examples,
    stats, moreProps,
    histogram: n.histogram,
    quantiles,
    examples: {
      max: examplePage(n.maxExamples), min: examplePage(n.minExamples), random: examplePage(n.randomExamples),
      quantile: examplePage(n.quantileExamples),
    },
    explanations: n.explanations.map((e) => ({
      ...e, scoreDetail: Object.entries(e.scores || {}).filter(([, v]) => typeof v === "number").map(([k, v]) => `${k}: ${v}`).join(", "),
    })),
    pattern: n.pattern && n.pattern.nodes.length ? {
      nodes: n.pattern.nodes.map((p) => ({ id: p.key, token: p.token, depth: p.depth, role: p.role, activation: p.activation, isEnd: p.isEnd })),
      edges: n.pattern.edges.map((e) => ({ source: e.source, target: e.target })),
    } : null,
    tokens: {
      input: n.inputTokens.edges.map((e) => ({ text: e.node.text, weight: e.weight })),
      output: n.outputTokens.edges.map((e) => ({ text: e.node.text, weight: e.weight })).filter((t) => t.weight > 0),
      // The most negative logit effects: a neuron that lowers every logit must not look like
      // it "promotes" the top of its list.
      outputBottom: n.outputTokensBottom.edges.map((e) => ({ text: e.node.text, weight: e.weight })).filter((t) => t.weight < 0),
      activation: n.activationTokens.edges.map((e) => ({ text: e.node.text, weight: e.weight, count: e.count })),
    },
    // Each list: {items, next (the cursor of its next page, or null), total}.
    connectivity: lists,
  };
}

// Relationship types the neighbourhood can follow, and the edge kinds each carries (the API
// filters by kind).
export const TYPE_KINDS = {
  COMPOSES: ["in_in", "in_out", "out_in", "out_out", "virtual", "gate_virtual"],
  CORRELATES: ["pearson"],
  HEAD_COMPOSES: ["K", "Q", "V", "O"],
  SIMILAR: ["n2g"],
  ATTRIBUTES_TO: ["neuron"], // corpus circuits (`neurograph circuits`) between neurons
};
const UNDIRECTED = new Set(["CORRELATES", "SIMILAR"]);

/** A head's key, as the graph stores it ("gpt2/L3H5"). */
export const headKey = (modelName, layer, head) => `${modelName}/L${layer}H${head}`;

/**
 * The drawable neighbourhood of a neuron (index given) or an attention head (`head` given):
 * {nodes, edges, truncated}.
 */
export async function neighborhood(modelName, layer, index, { depth = 1, minWeight = 0, types, perNode = 10, perKind = true, head = null } = {}) {
  const all = Object.keys(TYPE_KINDS);
  const kinds = !types || all.every((t) => types.includes(t)) ? null : types.flatMap((t) => TYPE_KINDS[t] || []);
  const center = head !== null ? headKey(modelName, layer, head) : `${modelName}/${layer}/${index}`;
  const d = await gql(`query Neighborhood($id: ID!, $depth: Int!, $kinds: [String!], $minWeight: Float, $perNode: Int!, $perKind: Boolean!) {
      neighborhood(id: $id, depth: $depth, kinds: $kinds, minWeight: $minWeight, perNode: $perNode, perKind: $perKind) {
        truncated nodes { key label model layer index title } edges { source target type kind weight } } }`,
  { id: center, depth, kinds, minWeight: minWeight || null, perNode, perKind });
  const g = d.neighborhood;
  return {
    truncated: g.truncated,
    nodes: g.nodes.map((n) => ({
      id: n.key, label: n.title, type: n.label === "Head" ? "head" : "neuron",
      model: n.model, layer: n.layer, index: n.index, center: n.key === center,
    })),
    edges: g.edges.map((e) => ({
      // A circuit's stored kind is "neuron" (its other end's label): shown as "attribution".
      source: e.source, target: e.target, type: e.type, kind: e.type === "ATTRIBUTES_TO" ? "attribution" : e.kind || e.type, weight: e.weight,
      undirected: UNDIRECTED.has(e.type),
    })),
  };
}

/** N2G token search; `roles` maps activating / important / any to token lists (ANDed). */
export async function searchTokens(modelName, roles, { first = 100, offset = 0, order = "LAYER" } = {}) {
  const d = await gql(`query SearchTokens($model: String!, $activating: [String!], $important: [String!], $any: [String!], $first: Int!, $offset: Int!, $order: SearchOrder!) {
    searchTokens(model: $model, activating: $activating, important: $important, any: $any, first: $first, offset: $offset, orderBy: $order) {
      score details neuron { key model layer index explanations { text }
        pattern { nodes { token role } } } } }`,
  {
    model: modelName, first, offset, order,
    activating: roles.activating.length ? roles.activating : null,
    important: roles.important.length ? roles.important : null,
    any: roles.any.length ? roles.any : null,
  });
  return d.searchTokens.map((hit) => ({
    ...neuronLink(hit.neuron), score: hit.score,
    explanation: hit.neuron.explanations[0] ? hit.neuron.explanations[0].text : "",
    matches: (hit.neuron.pattern ? hit.neuron.pattern.nodes : [])
      .filter((p) => p.role !== "ignore" && p.token !== null).map((p) => ({ text: p.token, role: p.role })),
  }));
}

/** Whether a model (or, with null, any model) has explanations at all. */
export async function hasExplanations(modelName) {
  const d = await gql(`query HasExplanations { models { name hasExplanations } }`);
  return d.models.some((m) => m.hasExplanations && (!modelName || m.name === modelName));
}

export async function searchExplanations(modelName, query, first = 50) {
  const d = await gql(`query SearchExplanations($query: String!, $model: String, $first: Int!) {
    searchExplanations(query: $query, model: $model, first: $first) {
      score explanation { text source score } neuron { key model layer index } } }`,
  { query, model: modelName || null, first });
  return d.searchExplanations.map((hit) => ({
    ...neuronLink(hit.neuron), text: hit.explanation.text, source: hit.explanation.source,
    score: hit.explanation.score, match: hit.score,
  }));
}

/**
 * The strongest weighted paths between two neurons, strongest first; `directed`: only paths that
 * follow each edge's direction from the first to the second (correlations count both ways).
 */
export async function paths(fromKey, toKey, { maxHops = 3, first = 3, directed = false } = {}) {
  const d = await gql(`query Paths($from: ID!, $to: ID!, $maxHops: Int!, $first: Int!, $directed: Boolean!) {
    paths(from: $from, to: $to, maxHops: $maxHops, first: $first, directed: $directed) {
      hops strength nodes { key label model layer index title } edges { source target type kind weight } } }`,
  { from: fromKey, to: toKey, maxHops, first, directed });
  return d.paths.map((p) => ({
    hops: p.hops, strength: p.strength,
    nodes: p.nodes.map((n) => ({
      key: n.key, label: n.title, type: n.label === "Head" ? "head" : "neuron",
      href: n.label === "Head" ? null : `#/neuron/${encodeURIComponent(n.model)}/${n.layer}/${n.index}`,
    })),
    edges: p.edges.map((e) => ({ ...e, kind: e.kind || e.type })),
  }));
}
