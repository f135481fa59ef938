// Models index (#/) and a model's page (#/model/{m}, #/model/{m}/layer/{l}): layers, the
// interesting neurons of a layer sortable by the stats the API offers, and a search box.

import { h, fill, fmt, section, empty, neuronHref, clear, loading, errorBox } from "../dom.js";
import { go, hashFor } from "../router.js";
import * as q from "../queries.js";

export async function modelsPage(page) {
  page.append(h("div", { class: "page-head" },
    h("div", {}, h("h1", {}, "Models"), h("div", { class: "sub" }, "Every model in the graph. Pick one to browse its layers and neurons."))));
  const slot = h("div", { class: "card" });
  page.append(slot);
  await fill(slot, q.models, (models) => {
    if (!models.length) return empty("No models in the graph yet. Load one with `neurograph build` or `neurograph import`.");
    return h("table", { class: "data models" },
      h("thead", {}, h("tr", {},
        h("th", {}, "Model"), h("th", { class: "num" }, "Layers"), h("th", { class: "num" }, "Neurons / layer"),
        h("th", { class: "num", title: "Sum of the layers' sizes" }, "Neurons"), h("th", {}, "Activation"), h("th", {}, "Source"), h("th", {}, "Dataset"))),
      h("tbody", {}, models.map((m) => h("tr", { dataset: { model: m.name } },
        h("td", {}, h("a", { href: `#/model/${encodeURIComponent(m.name)}` }, m.name)),
        h("td", { class: "num" }, fmt(m.nLayers)), h("td", { class: "num" }, fmt(m.dMlp)),
        h("td", { class: "num" }, fmt(m.nNeurons)),
        h("td", {}, m.actFn || "—"), h("td", {}, m.source || "—"), h("td", {}, m.dataset || "—")))));
  }, "Loading models…");
}

export async function modelPage(page, route, alive) {
  const { model } = route.params;
  const layer = route.params.layer;
  page.append(h("div", { class: "crumbs" }, h("a", { href: "#/" }, "Models"), " / ", model));
  const head = h("div", { class: "page-head" }, h("div", {}, h("h1", {}, model), h("div", { class: "sub" }, "Loading…")));
  page.append(head);
  const body = h("div", {}, loading("Loading model…"));
  page.append(body);
  let info;
  try {
    info = await q.model(model);
  } catch (err) {
    head.querySelector(".sub").textContent = "";
    clear(body).append(errorBox(err));
    return;
  }
  if (!alive()) return;
  clear(body);
  if (!info) {
    head.querySelector(".sub").textContent = "";
    body.append(errorBox(`unknown model "${model}"`, { retry: null }));
    return;
  }
  const withNeurons = (info.layers || []).filter((l) => l.nNeurons > 0);
  if (withNeurons.length) {
    // Neuroscope's "random neuron": a uniformly random layer, then index.
    head.append(h("div", { class: "actions" }, h("button", {
      class: "btn", type: "button", onclick: () => {
        const l = withNeurons[Math.floor(Math.random() * withNeurons.length)];
        location.hash = neuronHref(model, l.layer, Math.floor(Math.random() * l.nNeurons));
      },
    }, "Random neuron")));
  }
  head.querySelector(".sub").textContent =
    [`${info.nLayers} layers`, info.dMlp ? `${info.dMlp} neurons per layer` : null, info.actFn, info.dataset ? `data: ${info.dataset}` : null,
      // N2G coverage grows while a background pass fits every neuron, most interesting first; a sweep
      // stores most of its neurons near its end, so its blocks are shown too.
      info.n2gCoverage && info.n2gCoverage.total ? `N2G: ${fmt(info.n2gCoverage.done)} / ${fmt(info.n2gCoverage.total)}` +
        (info.n2gCoverage.sweepBlocks ? ` (sweep: ${fmt(info.n2gCoverage.sweepBlocksDone)} / ${fmt(info.n2gCoverage.sweepBlocks)} blocks)` : "") : null]
      .filter(Boolean).join(" · ");

  // Search box: goes to the search page with this model selected.
  const searchForm = h("form", {
    class: "form-row", onsubmit: (e) => {
      e.preventDefault();
      go("/search", { model, q: e.target.q.value.trim(), mode: e.target.mode.value });
    },
  },
  h("input", { type: "search", name: "q", placeholder: "Search tokens or explanations…", style: { flex: "1", minWidth: "220px" } }),
  h("select", { name: "mode" },
    h("option", { value: "any" }, "tokens (any)"), h("option", { value: "activating" }, "tokens (activating)"),
    h("option", { value: "important" }, "tokens (important)"), h("option", { value: "explanation" }, "explanations")),
  h("button", { class: "btn primary", type: "submit" }, "Search"));
  body.append(section("Search this model", searchForm));

  const layers = info.layers || [];
  const stats = info.stats && info.stats.length ? info.stats : [];
  const desc = route.query.order !== "asc";
  const base = layer === undefined ? `/model/${model}` : `/model/${model}/layer/${layer}`;

  // Interesting neurons: the whole model or one layer, ranked by the chosen stat.
  const tableSlot = h("div", {}, loading("Loading neurons…"));
  const controls = h("div", { class: "layer-filter" });
  const title = layer === undefined ? "Interesting neurons (all layers)" : `Interesting neurons in layer ${layer}`;
  body.append(section(title, controls, tableSlot));
  // Layers overview: size and the top neurons of each by the same stat.
  const layersSlot = h("div", {}, loading("Loading layers…"));
  body.append(section(`Layers (${layers.length})`, layersSlot));
  // Attention heads: each links to its page (what it reads from and writes into).
  const headsSlot = h("div", {}, loading("Loading heads…"));
  const headsCard = section(layer === undefined ? "Attention heads" : `Attention heads in layer ${layer}`, headsSlot);
  body.append(headsCard);
  const headsDone = fill(headsSlot, () => q.heads(model, layer ?? null), (rows) => {
    if (!rows.length) {
      headsCard.remove();
      return null;
    }
    const byLayer = new Map();
    for (const hd of rows) byLayer.set(hd.layer, [...(byLayer.get(hd.layer) || []), hd]);
    return h("table", { class: "data heads-grid" }, h("tbody", {}, [...byLayer].map(([l, hs]) => h("tr", { dataset: { layer: String(l) } },
      h("th", {}, `Layer ${l}`),
      h("td", {}, h("div", { class: "layers" }, hs.map((hd) => h("a", { href: q.headHref(model, hd.layer, hd.head), dataset: { head: String(hd.head) } }, `H${hd.head}`))))))));
  }, "Loading heads…");

  // Without an explicit ?sort, rank by "interest", else the first built-in statistic the model's
  // neurons have; with none (e.g. only imported columns), list neurons in order.
  let sort = route.query.sort || info.defaultStat;
  let neurons = null;
  try {
    neurons = sort ? await q.interestingNeurons(model, layer ?? null, sort, desc, 50) : [];
    if (!neurons.length && !route.query.sort) {
      neurons = await q.neuronsInOrder(model, layer ?? null, 50);
      sort = null;
    }
  } catch (err) {
    clear(tableSlot).append(errorBox(err));
    clear(layersSlot);
    return;
  }
  if (!alive()) return;
  const sortQuery = sort && (route.query.sort || sort !== info.defaultStat) ? { sort, order: route.query.order } : {};

  controls.append(h("span", { class: "label" }, "Layer"),
    h("div", { class: "layers" },
      h("a", { href: hashFor(`/model/${model}`, sortQuery), class: layer === undefined ? "on" : "" }, "All"),
      layers.map((l) => h("a", {
        href: hashFor(`/model/${model}/layer/${l.layer}`, sortQuery), class: l.layer === layer ? "on" : "",
        title: `${fmt(l.nNeurons)} neurons`, dataset: { layer: String(l.layer) },
      }, String(l.layer)))),
    h("label", { class: "rank-by" }, "Rank by",
      h("select", { name: "sort", onchange: (e) => go(base, { sort: e.target.value, order: desc ? "desc" : "asc" }) },
        sort ? null : h("option", { value: "", selected: true }, "position"),
        statOptions(info, stats, sort)),
      h("select", { name: "order", onchange: (e) => go(base, { sort, order: e.target.value }) },
        h("option", { value: "desc", selected: desc }, "highest first"),
        h("option", { value: "asc", selected: !desc }, "lowest first"))));

  clear(tableSlot);
  if (!sort) tableSlot.append(h("div", { class: "sub" }, stats.length ? "Neurons in order: pick a column to rank by." : "No numeric neuron properties to rank by yet: neurons in order."));
  if (!neurons.length) {
    tableSlot.append(empty(route.query.sort ? `No neurons with the statistic "${sort}".` : "No neurons stored."));
  } else {
    const cols = [...new Set([...(sort ? [sort] : []), ...stats.filter((s) => neurons.some((n) => n.stats[s] !== undefined && n.stats[s] !== null))])].slice(0, 12);
    const th = (s) => h("th", {
      class: "num sortable" + (s === sort ? " sorted" : ""), dataset: { stat: s },
      title: `Sort by ${s}`,
      onclick: () => go(base, { sort: s, order: s === sort && desc ? "asc" : "desc" }),
    }, s, s === sort ? (desc ? " ▼" : " ▲") : "");
    const explained = neurons.some((n) => n.explanation);
    tableSlot.append(h("div", { class: "scroll" }, h("table", { class: "data neurons" },
      h("thead", {}, h("tr", {}, h("th", {}, "Neuron"), explained ? h("th", {}, "Explanation") : null, cols.map(th))),
      h("tbody", {}, neurons.map((n) => h("tr", { dataset: { key: n.key } },
        h("td", {}, h("a", { href: neuronHref(n.model, n.layer, n.index) }, `L${n.layer}/N${n.index}`)),
        explained ? h("td", { class: "sub" }, n.explanation || "") : null,
        cols.map((s) => h("td", { class: "num" }, fmt(n.stats[s])))))))));
  }

  await headsDone;
  if (!alive()) return;
  if (!sort) {
    // Nothing to rank by: the layers with their sizes.
    clear(layersSlot).append(h("table", { class: "data layers-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Layer"), h("th", { class: "num" }, "Neurons"))),
      h("tbody", {}, layers.map((l) => h("tr", { dataset: { layer: String(l.layer) } },
        h("td", {}, h("a", { href: `#/model/${encodeURIComponent(model)}/layer/${l.layer}` }, `Layer ${l.layer}`)),
        h("td", { class: "num" }, fmt(l.nNeurons)))))));
    return;
  }
  await fill(layersSlot, () => q.layerTops(model, sort, desc, 3), (rows) => {
    if (!rows.length) return empty("No layers stored.");
    return h("table", { class: "data layers-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Layer"), h("th", { class: "num" }, "Neurons"), h("th", {}, `Top neurons by ${sort}${desc ? "" : " (lowest)"}`))),
      h("tbody", {}, rows.map((l) => h("tr", { dataset: { layer: String(l.layer) } },
        h("td", {}, h("a", { href: hashFor(`/model/${model}/layer/${l.layer}`, sortQuery) }, `Layer ${l.layer}`)),
        h("td", { class: "num" }, fmt(l.nNeurons)),
        h("td", {}, l.top.length ? h("span", { class: "top3" }, l.top.map((n) => h("span", {},
          h("a", { href: n.href }, n.label), h("small", {}, fmt(n.value))))) : h("span", { class: "sub" }, `no neuron has ${sort}`))))));
  }, "Loading layers…");
}

/** The rank-by options: built-in statistics, then imported columns, each with how many neurons have it. */
function statOptions(info, stats, sort) {
  const opt = (s) => {
    const si = info.statInfo[s];
    const partial = si && si.count < info.neuronCount ? ` (${fmt(si.count)} neurons)` : "";
    return h("option", { value: s, selected: s === sort, title: si ? `${fmt(si.min)} … ${fmt(si.max)}` : "" }, s + partial);
  };
  const builtin = stats.filter((s) => info.statInfo[s] && info.statInfo[s].stat);
  const imported = stats.filter((s) => !builtin.includes(s));
  return [
    builtin.length ? h("optgroup", { label: "Statistics" }, builtin.map(opt)) : null,
    imported.length ? h("optgroup", { label: "Imported columns" }, imported.map(opt)) : null,
  ];
}
