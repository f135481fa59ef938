// Entry point: route the hash to a page, each page renders into #app.
import { parseHash } from "./router.js";
import { h, clear, errorBox } from "./dom.js";
import { installTokenTooltip } from "./tokens.js";
import { destroyAll } from "./graph.js";
import { modelsPage, modelPage } from "./pages/model.js";
import { neuronPage } from "./pages/neuron.js";
import { neighborhoodPage } from "./pages/neighborhood.js";
import { headPage } from "./pages/head.js";
import { searchPage } from "./pages/search.js";
import { comparePage } from "./pages/compare.js";
import { runPage } from "./pages/run.js";
import { attributionPage } from "./pages/attribution.js";

const PAGES = {
  models: modelsPage,
  model: modelPage,
  neuron: neuronPage,
  neighborhood: neighborhoodPage,
  attention: headPage, // not "head": the page class would be .page-head
  search: searchPage,
  compare: comparePage,
  run: runPage,
  attribution: attributionPage,
  notfound: (app, route) => app.append(errorBox(`no page at "#${route.path}"`), h("p", {}, h("a", { href: "#/" }, "Back to the models"))),
};

const app = document.getElementById("app");
let renderId = 0;

async function render() {
  const hash = location.hash;
  const route = parseHash(hash);
  const id = ++renderId;
  // Free the previous page's drawings (and the window.cy / window.cyPattern handles tests read).
  destroyAll();
  clear(app);
  document.body.dataset.page = route.name;
  delete document.body.dataset.graph;
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === route.name || (a.dataset.nav === "models" && ["model", "models"].includes(route.name)));
  }
  const page = h("div", { class: `page page-${route.name}` });
  app.append(page);
  try {
    await PAGES[route.name](page, route, () => id === renderId);
  } catch (err) {
    console.error(err);
    if (id === renderId) page.append(errorBox(err));
  }
  // Tests wait for ready === "1" on the hash they navigated to: the click that changes the hash
  // returns before "hashchange" fires, so "ready" alone could still describe the previous page.
  if (id === renderId) Object.assign(document.body.dataset, { ready: "1", hash });
}

document.getElementById("jump").addEventListener("submit", (e) => {
  e.preventDefault();
  const v = e.target.key.value.trim();
  const m = v.match(/^([A-Za-z0-9_.\-]+)\/(\d+)\/(\d+)$/);
  if (m) location.hash = `#/neuron/${m[1]}/${m[2]}/${m[3]}`;
  else location.hash = `#/search?q=${encodeURIComponent(v)}`;
});

installTokenTooltip();
window.addEventListener("hashchange", () => { document.body.dataset.ready = ""; render(); });
render();
