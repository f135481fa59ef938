// Neuron page (#/neuron/{m}/{l}/{i}) in the Neuroscope tradition: stats and histogram,
// explanations, top tokens, the N2G pattern graph, connectivity by kind, and max/min examples.

import { h, fmt, section, empty, neuronHref, clear, loading, errorBox, showToken, hasRawByte } from "../dom.js";
import { exampleView, listScale, scaleLegend } from "../tokens.js";
import { histogramSvg } from "../histogram.js";
import { drawPattern, kindColor } from "../graph.js";
import * as q from "../queries.js";
import { textBox, steerPanel } from "../live.js";

export async function neuronPage(page, route, alive) {
  const { model, layer, index } = route.params;
  page.append(header(model, layer, index));
  const body = h("div", {}, loading("Loading neuron…"));
  page.append(body);
  // Prev / Next cross layer boundaries once the layer sizes are known (not before: no link to a
  // neuron that does not exist).
  q.layerSizes(model).then((sizes) => { if (alive()) stepLinks(page, model, layer, index, sizes); }).catch(() => {});
  let n;
  try {
    // ?examples=N: how many examples of each kind per page (Neuroscope shows 20).
    const per = Math.min(100, Math.max(1, Number(route.query.examples) || 20));
    n = await q.neuron(model, layer, index, { examples: per });
  } catch (err) {
    clear(body).append(errorBox(err));
    return;
  }
  if (!alive()) return;
  clear(body);
  if (!n) {
    body.append(errorBox(`no neuron ${model}/${layer}/${index} in the graph`));
    return;
  }
  renderNeuron(body, n, { compact: false });
  body.append(h("div", { class: "grid two" }, textBox(model, layer, index), steerPanel(model, layer, index)));
}

export function header(model, layer, index) {
  const m = encodeURIComponent(model);
  return h("div", {},
    h("div", { class: "crumbs" },
      h("a", { href: "#/" }, "Models"), " / ", h("a", { href: `#/model/${m}` }, model), " / ",
      h("a", { href: `#/model/${m}/layer/${layer}` }, `layer ${layer}`), " / ", `neuron ${index}`),
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, `${model} · L${layer} · N${index}`),
        h("div", { class: "sub mono" }, `${model}/${layer}/${index}`)),
      h("div", { class: "actions" },
        h("a", { class: "btn step prev", "aria-disabled": "true" }, "← Prev"),
        h("a", { class: "btn step next", "aria-disabled": "true" }, "Next →"),
        h("a", { class: "btn primary", href: `#/neighborhood/${m}/${layer}/${index}` }, "Neighbourhood graph"),
        h("a", { class: "btn", href: `#/compare?a=${m}/${layer}/${index}` }, "Compare…"))));
}

/**
 * The neighbours of neuron (layer, index) in (layer, index) order, given each layer's size:
 * the next of a layer's last neuron is the next layer's first; none past the model's last.
 */
export function stepTargets(layer, index, sizes) {
  const size = (l) => (sizes.get(l) || 0);
  let prev = null;
  let next = null;
  if (sizes.get(layer) === null || sizes.get(layer) === undefined) {
    // The layer's size is not known: step within it, as far as the index goes.
    return { prev: index > 0 ? [layer, index - 1] : null, next: [layer, index + 1] };
  }
  if (index > 0) prev = [layer, Math.min(index - 1, size(layer) - 1)];
  else for (let l = layer - 1; l >= 0; l--) if (size(l) > 0) { prev = [l, size(l) - 1]; break; }
  if (index + 1 < size(layer)) next = [layer, index + 1];
  else for (let l = layer + 1; l <= Math.max(...sizes.keys(), -1); l++) if (size(l) > 0) { next = [l, 0]; break; }
  return { prev, next };
}

function stepLinks(page, model, layer, index, sizes) {
  const { prev, next } = stepTargets(layer, index, sizes);
  for (const [sel, target, label] of [[".step.prev", prev, "← Prev"], [".step.next", next, "Next →"]]) {
    const a = page.querySelector(sel);
    if (!a) continue;
    if (target) {
      a.href = neuronHref(model, target[0], target[1]);
      a.removeAttribute("aria-disabled");
      a.title = `L${target[0]} / N${target[1]}`;
      a.textContent = target[0] === layer ? label : (sel === ".step.prev" ? `← L${target[0]}/N${target[1]}` : `L${target[0]}/N${target[1]} →`);
    } else {
      a.removeAttribute("href");
      a.title = sel === ".step.prev" ? "the model's first neuron" : "the model's last neuron";
    }
  }
}

/** The whole neuron view; `compact` is the narrower variant used side by side on Compare. */
export function renderNeuron(body, n, { compact = false } = {}) {
  const statsCard = section("Statistics", statsView(n));
  const histCard = section("Activation histogram", n.histogram && n.histogram.counts && n.histogram.counts.length
    ? [histogramSvg(n.histogram, { markers: n.quantiles || [], min: n.stats.min, max: n.stats.max }),
      n.quantiles && n.quantiles.length && n.quantiles.some((m) => m.level === null)
        ? h("div", { class: "sub small" }, "The source stored these quantiles without their levels: they are numbered, not named.") : null]
    : empty("No histogram stored for this neuron."));
  body.append(roleView(n));
  const explCard = section("Explanations", explanationsView(n.explanations));
  const tokCard = section("Top tokens", tokensView(n.tokens));
  if (compact) {
    body.append(histCard, statsCard, explCard, tokCard);
  } else {
    // The distribution first: it says at a glance what the 30 numbers below it summarise.
    body.append(h("div", { class: "grid two" }, h("div", {}, histCard, statsCard), h("div", {}, explCard, tokCard)));
  }
  const patternEl = h("div", { class: "cy pattern", id: compact ? null : "pattern-graph" });
  const patternCard = section("N2G pattern graph",
    n.pattern && n.pattern.nodes.length
      ? [patternEl, h("div", { class: "legend" },
        h("span", {}, h("span", { class: "node-sw", style: { background: "#f87171" } }), "activating token"),
        h("span", {}, h("span", { class: "node-sw", style: { background: "#dbeafe", border: "1px solid #2563eb" } }), "important context"),
        h("span", {}, h("span", { class: "node-sw", style: { background: "#f1f5f9", border: "1px dashed #94a3b8" } }), "any token"),
        h("span", { class: "sub" }, "Read left to right as text: context tokens lead to the activating token (red) on the right."))]
      : empty("No N2G pattern graph for this neuron."));
  body.append(patternCard);
  body.append(section("Connectivity", connectivityView(n)));
  body.append(h("div", { class: compact ? "" : "grid two" },
    examplesCard(n, "max", "Max-activating examples"), examplesCard(n, "min", "Min-activating examples")));
  // Random samples (as OpenAI's neuron records keep): only where the source has them.
  if (n.examples.random.items.length) body.append(examplesCard(n, "random", "Random samples"));
  // Quantiles (as Neuronpedia's dashboards): a few contexts drawn per interval of (0, max].
  if (n.examples.quantile.items.length) body.append(quantilesCard(n));
  // Draw after insertion so cytoscape measures a laid-out container.
  if (n.pattern && n.pattern.nodes.length) {
    requestAnimationFrame(() => { if (patternEl.isConnected) drawPattern(patternEl, n.pattern); });
  }
}

const ofTotal = (shown, total) => (total > shown ? `${shown} of ${total}` : `${shown}`);

/** Role and community from the graph analytics (topology), each a link to its neurons. */
function roleView(n) {
  return h("div", { class: "role-line" },
    h("span", { class: "sub small" }, "Role"),
    n.role ? h("span", { class: "pill role", dataset: { role: n.role } }, n.role) : h("span", { class: "sub small" }, "— (no topology computed)"),
    h("span", { class: "sub small" }, "Community"),
    n.community !== null && n.community !== undefined
      ? h("span", { class: "pill community", title: "community of the composition graph (Louvain)", dataset: { community: String(n.community) } }, `#${n.community}`)
      : h("span", { class: "sub small" }, "—"));
}

function statsView(n) {
  const entries = Object.entries(n.stats || {}).filter(([, v]) => v !== null && v !== undefined);
  const more = Object.entries(n.moreProps || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length && !more.length) return empty("No statistics stored for this neuron.");
  const kv = (list, cls) => h("dl", { class: `kv ${cls}` }, list.map(([k, v]) => h("div", { dataset: { stat: k } }, h("dt", {}, k), h("dd", {}, fmt(v, 4)))));
  return h("div", {},
    entries.length ? kv(entries, "stats") : empty("No activation statistics stored for this neuron."),
    more.length ? h("details", { class: "more-props", open: !entries.length },
      h("summary", {}, `Other stored properties (${more.length})`), kv(more, "props")) : null);
}

function explanationsView(list) {
  if (!list || !list.length) return empty("No explanations for this neuron.");
  return h("div", { class: "explanations" }, list.map((e) => h("div", { class: "expl" },
    h("span", { class: "pill" }, e.source || "?"),
    h("span", { class: "text" }, e.text),
    h("span", { class: "score", title: e.scoreDetail || "score" }, e.score === null || e.score === undefined ? "—" : fmt(e.score, 3)))));
}

function tokensView(tokens) {
  const kinds = [["output", "Output: raises these logits most"], ["outputBottom", "Output: lowers these logits most"],
    ["input", "Input (embedding weight)"], ["activation", "Mean activation on token"]];
  const present = kinds.filter(([k]) => tokens && tokens[k] && tokens[k].length);
  if (!present.length) return empty("No token effects stored for this neuron.");
  return h("div", {}, present.map(([k, label]) => h("div", { class: "tok-group", dataset: { kind: k } },
    h("h3", {}, label),
    h("div", { class: "tok-list" }, tokens[k].map((t) => h("span", {
      class: "tok-chip" + (t.weight < 0 ? " neg" : "") + (hasRawByte(t.text) ? " raw" : ""), title: `${JSON.stringify(t.text)} weight ${fmt(t.weight, 4)}${t.count ? `, ${t.count} occurrences` : ""}`,
    }, showToken(t.text), h("small", {}, fmt(t.weight, 2))))))));
}

function weightBar(w, maxW) {
  const width = Math.round(50 * Math.min(1, Math.abs(w) / (maxW || 1)));
  return h("span", { class: "wbar" + (w < 0 ? " neg" : ""), style: { width: `${width}px` } });
}

function connList(items, { showKind = true } = {}) {
  if (!items.length) return empty("No connections of this kind stored.");
  const maxW = Math.max(...items.map((e) => Math.abs(e.weight ?? 0)));
  return h("ul", { class: "conn-list" }, items.map((e) => h("li", { dataset: { kind: e.kind || "" } },
    showKind && e.kind ? h("span", { class: "pill kind", style: { background: kindColor(e.kind) } }, e.kind) : null,
    e.href ? h("a", { href: e.href }, e.label) : h("span", {}, e.label),
    e.note ? h("span", { class: "sub small" }, e.note) : null,
    h("span", { class: "w" }, weightBar(e.weight ?? 0, maxW), " ", fmt(e.weight, 3)))));
}

function groupByKind(items) {
  const g = new Map();
  for (const e of items) {
    const k = e.kind || "—";
    if (!g.has(k)) g.set(k, []);
    g.get(k).push(e);
  }
  return g;
}

function kindGroups(items) {
  if (!items.length) return empty("No connections of this kind stored.");
  return h("div", {}, [...groupByKind(items)].map(([k, list]) => h("div", { class: "kind-group", dataset: { kind: k } },
    h("h3", {}, h("span", { class: "pill kind", style: { background: kindColor(k) } }, k), " ", h("span", { class: "sub small" }, `${list.length}`)),
    connList(list, { showKind: false }))));
}

function connectivityView(n) {
  const c = n.connectivity;
  const tabs = [
    ["inputs", "Inputs", (items) => kindGroups(items)],
    ["outputs", "Outputs", (items) => kindGroups(items)],
    ["correlated", "Correlated", (items) => connList(items, { showKind: false })],
    ["heads", "Heads", (items) => kindGroups(items)],
    ["similar", "Similar (N2G)", (items) => connList(items, { showKind: false })],
    ["attributes", "Drives (circuits)", (items) => connList(items, { showKind: false })],
    ["attributedBy", "Driven by (circuits)", (items) => connList(items, { showKind: false })],
  ].filter(([key]) => c[key] && (c[key].total || !key.startsWith("attribute"))); // circuits only where merged
  const pane = h("div", { class: "conn-pane" });
  const bar = h("div", { class: "tabs", role: "tablist" });
  const label = (key) => {
    const list = c[key];
    return `${tabs.find((t) => t[0] === key)[1]} (${ofTotal(list.items.length, list.total)})`;
  };
  const show = (key) => {
    for (const b of bar.children) b.classList.toggle("on", b.dataset.tab === key);
    const list = c[key];
    clear(pane).append(tabs.find((t) => t[0] === key)[2](list.items));
    pane.dataset.tab = key;
    if (list.next) pane.append(moreButton(n, key, () => {
      bar.querySelector(`[data-tab="${key}"]`).textContent = label(key);
      show(key);
    }));
  };
  for (const [key] of tabs) {
    // The API pages edges: the tab says when there are more than shown, "More" loads them.
    bar.append(h("button", { type: "button", role: "tab", dataset: { tab: key }, onclick: () => show(key) }, label(key)));
  }
  const first = tabs.find(([k]) => c[k].items.length) || tabs[0];
  show(first[0]);
  return h("div", { class: "connectivity" }, bar, pane);
}

/** "More" under a connectivity list: appends its next page to the list, then `done()`. */
function moreButton(n, key, done) {
  const list = n.connectivity[key];
  const status = h("span", { class: "sub small" });
  const more = h("button", {
    class: "btn more conn-more", type: "button", dataset: { tab: key },
    onclick: async () => {
      more.disabled = true;
      status.textContent = " Loading…";
      try {
        const p = await q.moreConnections(n.model, n.layer, n.index, key, list.next);
        list.items.push(...p.items);
        list.next = p.next;
        list.total = p.total;
        done();
      } catch (err) {
        status.textContent = ` ${err.message}`;
        status.classList.add("err");
        more.disabled = false;
      }
    },
  }, `More (${list.items.length} of ${list.total} shown)`);
  return h("div", { class: "load-more" }, more, status);
}

/** Examples sampled per interval of the activation range, the highest interval first, each
 * headed by its bounds and how many dataset contexts peak inside it. One colour scale for all
 * intervals (0 to the neuron's max), so low intervals look faint, as they should. */
function quantilesCard(n) {
  const page = n.examples.quantile;
  const card = h("section", { class: "card quantiles" }, h("h2", {}, "Quantiles"));
  const bins = new Map();
  for (const ex of page.items) {
    if (!bins.has(ex.bin)) bins.set(ex.bin, []);
    bins.get(ex.bin).push(ex);
  }
  const top = Math.max(...page.items.map((ex) => ex.binHigh ?? 0), 0);
  const range = { ...listScale(page.items), max: top || 1 };
  card.append(h("div", { class: "sub small" },
    `Contexts drawn uniformly within each interval of the activation range (0, ${fmt(top)}], by their max activation.`));
  card.append(scaleLegend(range));
  for (const b of [...bins.keys()].sort((x, y) => y - x)) {
    const items = bins.get(b);
    const { binLow, binHigh, binCount } = items[0];
    const group = h("div", { class: "quantile-bin", dataset: { bin: String(b) } },
      h("h3", {}, `Interval ${fmt(binLow)} – ${fmt(binHigh)}`, " ",
        h("span", { class: "sub small" }, `${items.length} of ${binCount} context${binCount === 1 ? "" : "s"}`)));
    const list = h("div", { class: "examples", dataset: { kind: "quantile" } });
    items.forEach((ex, i) => list.append(exampleView(ex, { ...range, kind: "quantile", title: `#${i + 1}` })));
    group.append(list);
    card.append(group);
  }
  if (page.next) card.append(h("div", { class: "sub small" }, `${page.items.length} of ${page.total} shown.`));
  return card;
}

/** A card of examples of one kind, with "Load more" while the API has further pages. */
function examplesCard(n, kind, title) {
  const page = n.examples[kind];
  const heading = h("h2", {}, `${title} (${ofTotal(page.items.length, page.total)})`);
  const card = h("section", { class: "card" }, heading);
  if (!page.items.length) {
    card.append(empty(kind === "random" ? "No random samples stored." : `No ${kind}-activating examples stored.`));
    return card;
  }
  // One colour scale per list (Neuroscope scales per text): the first page sets it, later pages
  // keep it so that colours stay comparable down the list.
  const range = listScale(page.items);
  card.append(scaleLegend(range));
  const list = h("div", { class: "examples", dataset: { kind } });
  let shown = 0;
  const add = (items) => {
    for (const ex of items) list.append(exampleView(ex, { ...range, kind, title: `#${++shown}` }));
    heading.textContent = `${title} (${ofTotal(shown, page.total)})`;
  };
  add(page.items);
  // ?examples=50 on a neuron with 10 stored: say so rather than silently show fewer.
  if (!page.next && n.pageSize > page.items.length) {
    card.append(h("div", { class: "sub small stored-note" },
      `${page.items.length} ${page.items.length === 1 ? "is" : "are"} all the graph stores for this neuron (${n.pageSize} asked for); the build keeps the top examples per neuron.`));
  }
  card.append(list);
  let next = page.next;
  if (next) {
    const status = h("span", { class: "sub small" });
    const more = h("button", {
      class: "btn more", type: "button",
      onclick: async () => {
        more.disabled = true;
        status.textContent = " Loading…";
        try {
          const p = await q.moreExamples(n.model, n.layer, n.index, kind.toUpperCase(), next, n.pageSize);
          add(p.items);
          next = p.next;
          status.textContent = "";
          if (!next) more.remove();
        } catch (err) {
          status.textContent = ` ${err.message}`;
          status.classList.add("err");
        }
        more.disabled = false;
      },
    }, "Load more");
    card.append(h("div", { class: "load-more" }, more, status));
  }
  return card;
}
