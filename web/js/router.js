// Hash routing: "#/neuron/gpt2/3/17?x=1" -> {name: "neuron", params: {model, layer, index}, query}.
//   const r = parseHash("#/neuron/gpt2/3/17"); go("#/search", {q: "cat"});

const ROUTES = [
  ["models", /^\/?$/, []],
  ["models", /^\/models\/?$/, []],
  ["model", /^\/model\/([^/]+)\/?$/, ["model"]],
  ["model", /^\/model\/([^/]+)\/layer\/(\d+)\/?$/, ["model", "layer"]],
  ["neuron", /^\/neuron\/([^/]+)\/(\d+)\/(\d+)\/?$/, ["model", "layer", "index"]],
  ["neighborhood", /^\/neighborhood\/([^/]+)\/(\d+)\/(\d+)\/?$/, ["model", "layer", "index"]],
  ["neighborhood", /^\/neighborhood\/([^/]+)\/head\/(\d+)\/(\d+)\/?$/, ["model", "layer", "head"]],
  ["attention", /^\/head\/([^/]+)\/(\d+)\/(\d+)\/?$/, ["model", "layer", "head"]],
  ["search", /^\/search\/?$/, []],
  ["run", /^\/run\/?$/, []],
  ["attribution", /^\/attribution\/?$/, []],
  ["compare", /^\/compare\/?$/, []],
  ["compare", /^\/compare\/([^/]+)\/(\d+)\/(\d+)\/([^/]+)\/(\d+)\/(\d+)\/?$/, ["model", "layer", "index", "model2", "layer2", "index2"]],
];

export function parseHash(hash) {
  const raw = (hash || "").replace(/^#/, "");
  const [path, qs = ""] = raw.split("?");
  const query = Object.fromEntries(new URLSearchParams(qs));
  for (const [name, re, keys] of ROUTES) {
    const m = path.match(re);
    if (!m) continue;
    const params = {};
    keys.forEach((k, i) => {
      const v = decodeURIComponent(m[i + 1]);
      params[k] = /layer|index|head/.test(k) ? Number(v) : v;
    });
    return { name, params, query, path };
  }
  return { name: "notfound", params: {}, query, path };
}

export function hashFor(path, query = {}) {
  const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  const s = q.toString();
  return `#${path}${s ? "?" + s : ""}`;
}

export function go(path, query) {
  location.hash = hashFor(path, query);
}
