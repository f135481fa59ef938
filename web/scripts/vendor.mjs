// Copy the built files the UI serves into vendor/, so that nothing is fetched from a CDN:
// the graph library (cytoscape) for the UI, and GraphiQL with React for /graphql in a browser.
// Module files are saved with a .js name: every static server knows its MIME type.
// Usage: npm install && npm run vendor   (then commit vendor/)
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const mod = (name) => join(root, "node_modules", name);
const version = (name) => JSON.parse(readFileSync(join(mod(name), "package.json"), "utf8")).version;

// [package, file in the package, name in vendor/, licence]
const FILES = [
  ["cytoscape", "dist/cytoscape.esm.min.mjs", "cytoscape.esm.min.js", "MIT"],
  // The neighbourhood's layered layout (ELK's layered algorithm, the version cytoscape-elk asks
  // for) and folding a layer into one node: UMD builds, loaded as classic scripts on first use.
  ["elkjs", "lib/elk.bundled.js", "elk.bundled.js", "EPL-2.0"],
  ["cytoscape-elk", "dist/cytoscape-elk.js", "cytoscape-elk.js", "MIT"],
  ["cytoscape-expand-collapse", "cytoscape-expand-collapse.js", "cytoscape-expand-collapse.js", "MIT"],
  ["react", "umd/react.production.min.js", "react.production.min.js", "MIT"],
  ["react-dom", "umd/react-dom.production.min.js", "react-dom.production.min.js", "MIT"],
  ["graphiql", "graphiql.min.js", "graphiql.min.js", "MIT"],
  ["graphiql", "graphiql.min.css", "graphiql.min.css", "MIT"],
  ["@graphiql/plugin-explorer", "dist/index.umd.js", "graphiql-plugin-explorer.umd.js", "MIT"],
  ["@graphiql/plugin-explorer", "dist/style.css", "graphiql-plugin-explorer.css", "MIT"],
];

mkdirSync(join(root, "vendor"), { recursive: true });
const lines = [];
for (const [pkg, file, name, licence] of FILES) {
  copyFileSync(join(mod(pkg), file), join(root, "vendor", name));
  lines.push(`${pkg} ${version(pkg)} (${file} saved as vendor/${name}, ${licence})`);
}
for (const pkg of new Set(FILES.map(([p]) => p))) {
  const safe = pkg.replace(/^@/, "").replace(/\//g, "-");
  const out = join(root, "vendor", `${safe}.LICENSE`);
  const licence = ["LICENSE", "LICENSE.md"].map((f) => join(mod(pkg), f)).find((f) => existsSync(f));
  if (licence) copyFileSync(licence, out);
  else {
    const meta = JSON.parse(readFileSync(join(mod(pkg), "package.json"), "utf8"));
    writeFileSync(out, `${pkg} ${meta.version}: licence "${meta.license}" (its package.json; the package ships no LICENSE file)\n`);
  }
}
writeFileSync(join(root, "vendor/VERSIONS.txt"), lines.join("\n") + "\n");
console.log(lines.join("\n"));
