// Search page (#/search?model=&mode=&q=): N2G token search (activating / important / any; several
// comma-separated tokens are ANDed, as DeepDecipher's neuron2graph-search) and explanation search.

import { h, fill, fmt, section, empty, errorBox, neuronHref, showToken } from "../dom.js";
import { go } from "../router.js";
import * as q from "../queries.js";

const PER_PAGE = 50; // token-search hits a page (?per=N, 1-99)

const MODES = [
  ["any", "Tokens: activating or important"],
  ["activating", "Tokens: activating"],
  ["important", "Tokens: important (context)"],
  ["explanation", "Explanations (text)"],
];

export async function searchPage(page, route, alive) {
  const qy = route.query;
  const mode = MODES.some(([m]) => m === qy.mode) ? qy.mode : "any";
  const text = qy.q || "";
  page.append(h("div", { class: "page-head" }, h("div", {},
    h("h1", {}, "Search"),
    h("div", { class: "sub" }, "Find neurons by the tokens their N2G pattern graphs match, or by the words of their explanations. Separate several tokens with commas to require all of them."))));

  const modelSel = h("select", { name: "model" }, h("option", { value: "" }, "Loading models…"));
  const form = h("form", {
    class: "form-row search-form",
    onsubmit: (e) => {
      e.preventDefault();
      // Leading spaces are part of a token (" the" and "the" differ): only trailing ones go.
      go("/search", { model: modelSel.value, mode: form.mode.value, q: form.q.value.replace(/\s+$/, ""), order: form.order.value });
    },
  },
  h("label", {}, "Model", modelSel),
  h("select", { name: "mode" }, MODES.map(([m, label]) => h("option", { value: m, selected: m === mode }, label))),
  h("select", { name: "order", title: "Order of token-search hits" },
    h("option", { value: "layer", selected: qy.order !== "score" }, "by layer"),
    h("option", { value: "score", selected: qy.order === "score" }, "by N2G score")),
  h("input", { type: "search", name: "q", value: text, placeholder: 'e.g.  " the", cat   or   an explanation word',
    title: 'Spaces are part of tokens: " the" (a leading space, as in most words) and "the" differ. Quote a token to keep its spaces exactly.',
    style: { flex: "1", minWidth: "240px" } }),
  h("button", { class: "btn primary", type: "submit" }, "Search"));
  page.append(section(null, form));
  const results = h("section", { class: "card results" });
  page.append(results);

  let models = [];
  try {
    models = await q.models();
  } catch (err) {
    models = [];
  }
  if (!alive()) return;
  modelSel.textContent = "";
  for (const m of models) modelSel.append(h("option", { value: m.name, selected: m.name === qy.model }, m.name));
  // Explanation search may span every model; token search needs one (tokens are per vocabulary).
  modelSel.append(h("option", { value: "*", selected: qy.model === "*" }, "all models (explanations)"));
  const model = qy.model === "*" ? null : qy.model || (models[0] && models[0].name);
  if (!models.length) {
    results.append(empty("No models in the graph to search."));
    return;
  }
  if (!text) {
    results.append(empty("Type one or more tokens (comma-separated) or words from an explanation, then Search."));
    return;
  }
  if (mode === "explanation") {
    // With no hits, say whether there was anything to search at all.
    const search = async () => {
      const rows = await q.searchExplanations(model, text);
      return { rows, any: rows.length ? true : await q.hasExplanations(model) };
    };
    await fill(results, search, ({ rows, any }) => {
      if (!any) {
        return h("div", { class: "state empty no-explanations" },
          model ? `${model} has no explanations stored, so explanation search has nothing to look in.`
            : "No model in the graph has explanations stored, so explanation search has nothing to look in.",
          " Import some (", h("code", {}, "neurograph import openai …"), ", ", h("code", {}, "neurograph import deepdecipher …"),
          ") or add one with the ", h("code", {}, "addExplanation"), " mutation; token search (N2G patterns) works without them.");
      }
      if (!rows.length) return empty(`No explanation of a ${model || "any"} neuron matches "${text}".`);
      return h("div", {}, h("h2", {}, `${rows.length} explanation${rows.length === 1 ? "" : "s"} matching "${text}"`),
        h("table", { class: "data results-table" },
          h("thead", {}, h("tr", {}, h("th", {}, "Neuron"), h("th", {}, "Source"), h("th", {}, "Explanation"), h("th", { class: "num" }, "Score"))),
          h("tbody", {}, rows.map((r) => h("tr", {},
            h("td", {}, h("a", { href: neuronHref(r.model, r.layer, r.index) }, model ? `L${r.layer}/N${r.index}` : `${r.model} L${r.layer}/N${r.index}`)),
            h("td", {}, h("span", { class: "pill" }, r.source || "?")),
            h("td", {}, highlight(r.text, text)), h("td", { class: "num" }, fmt(r.score, 3)))))));
    }, "Searching explanations…");
    return;
  }
  if (!model) {
    results.append(empty("Token search looks in one model's vocabulary: pick a model."));
    return;
  }
  const roles = parseRoles(text, mode);
  const what = describe(roles);
  const wanted = new Set(Object.values(roles).flat().map(norm));
  const order = qy.order === "score" ? "SCORE" : "LAYER";
  // A page of hits at a time (one more asked for, to know whether others follow: the API gives
  // at most 100 a request); with every neuron covered a common token has thousands.
  const per = Math.min(99, Math.max(1, parseInt(qy.per, 10) || PER_PAGE));
  const next = (offset) => q.searchTokens(model, roles, { order, first: per + 1, offset });
  const row = (r) => h("tr", {},
    h("td", {}, h("a", { href: neuronHref(r.model, r.layer, r.index) }, `L${r.layer}/N${r.index}`)),
    h("td", {}, matchChips(r.matches || [], wanted)),
    h("td", { class: "sub" }, r.explanation || ""),
    h("td", { class: "num" }, fmt(r.score, 3)),
    h("td", {}, h("a", { class: "small", href: `#/compare?a=${encodeURIComponent(r.model)}/${r.layer}/${r.index}` }, "compare")));
  await fill(results, () => next(0), (rows) => {
    if (!rows.length) return empty(`No ${model} neuron's pattern graph has ${what}.`);
    const title = h("h2", {});
    const body = h("tbody", {});
    const more = h("button", { class: "btn more-hits", type: "button" }, `Show the next ${per}`);
    let shown = 0;
    const add = (batch) => {
      body.append(...batch.slice(0, per).map(row));
      shown += Math.min(per, batch.length);
      const rest = batch.length > per;
      const layers = order === "LAYER" && rest ? ` (the first ${fmt(shown)}, by layer: up to layer ${batch[per - 1].layer})` : "";
      title.textContent = `${fmt(shown)}${rest ? "+" : ""} neuron${shown === 1 && !rest ? "" : "s"} with ${what}${layers}`;
      more.style.display = rest ? "" : "none";
    };
    more.addEventListener("click", async () => {
      more.disabled = true;
      try {
        add(await next(shown));
      } catch (err) {
        more.after(errorBox(err));
      } finally {
        more.disabled = false;
      }
    });
    add(rows);
    return h("div", {}, title,
      h("table", { class: "data results-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Neuron"), h("th", {}, "Matched tokens"), h("th", {}, "Explanation"),
          h("th", { class: "num", title: "N2G firing F1 of the neuron's pattern graph" }, "N2G F1"), h("th", {}, ""))),
        body),
      more);
  }, "Searching tokens…");
}

/**
 * A neuron's matched pattern tokens as chips, each (token, role) once with its count ("the ×30"),
 * the searched tokens first, at most `max` chips and "+N more".
 */
export function matchChips(matches, wanted, max = 12) {
  const seen = new Map();
  for (const m of matches) {
    const k = `${m.role}\u0000${m.text}`;
    if (seen.has(k)) seen.get(k).n += 1;
    else seen.set(k, { ...m, n: 1 });
  }
  const chips = [...seen.values()].sort((a, b) => (wanted.has(norm(b.text)) - wanted.has(norm(a.text))) || b.n - a.n);
  const shown = chips.slice(0, max);
  return h("span", { class: "tok-list" },
    shown.map((m) => h("span", {
      class: "tok-chip" + (wanted.has(norm(m.text)) ? " hit" : ""),
      title: `${m.role}${m.n > 1 ? `, ${m.n} pattern nodes` : ""}`, dataset: { count: String(m.n) },
    }, showToken(m.text), h("small", {}, m.n > 1 ? `${m.role} ×${m.n}` : m.role))),
    chips.length > max ? h("span", { class: "sub small more-chips" }, `+${chips.length - max} more`) : null);
}

/**
 * '" the", cat' in mode "any" -> {any: [" the", "cat"], activating: [], important: []}. Spaces
 * are part of a token (" the" and "the" are different tokens): a quoted token keeps them
 * exactly; unquoted, a term keeps its leading spaces except the one space after a comma that
 * separates it. A term may name its own role as DeepDecipher's query string does:
 * "activating:paris, important:capital".
 */
export function parseRoles(text, mode) {
  const roles = { activating: [], important: [], any: [] };
  text.split(",").forEach((term, i) => {
    let t = term.replace(/\s+$/, "");
    if (i > 0 && t.startsWith(" ")) t = t.slice(1);
    const m = t.match(/^\s*(activating|important|any):(.+)$/i);
    const role = m ? m[1].toLowerCase() : mode;
    let tok = m ? m[2] : t;
    const quoted = tok.trim().match(/^"(.*)"$/s);
    if (quoted) tok = quoted[1];
    if (!tok.trim() && !quoted) return;
    roles[role].push(tok);
  });
  return roles;
}

// The API compares tokens lower-cased with their spaces: highlight the same way.
const norm = (t) => String(t ?? "").toLowerCase();

function describe(roles) {
  const parts = [];
  for (const [role, toks] of Object.entries(roles)) {
    for (const t of toks) parts.push(`${role === "any" ? "" : role + " "}token ${JSON.stringify(t)}`);
  }
  return parts.join(" AND ");
}

/** The explanation text with the query's words marked. */
function highlight(textValue, query) {
  const words = query.split(/\s+/).map((w) => w.replace(/[^\p{L}\p{N}_-]/gu, "")).filter((w) => w.length > 1);
  if (!words.length) return textValue;
  // Words hold only letters, digits, "_" and "-": nothing to escape in a pattern.
  const re = new RegExp(`(${words.join("|")})`, "giu");
  return textValue.split(re).map((part, i) => (i % 2 ? h("mark", {}, part) : part));
}
