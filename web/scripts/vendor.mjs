// Copy the graph library's built ES module into vendor/ so the UI is served without npm.
// Saved with a .js name: every static server knows its MIME type (module scripts need a JavaScript one).
// Usage: npm install && npm run vendor   (then commit vendor/)
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "node_modules/cytoscape/package.json"), "utf8"));
mkdirSync(join(root, "vendor"), { recursive: true });
copyFileSync(join(root, "node_modules/cytoscape/dist/cytoscape.esm.min.mjs"), join(root, "vendor/cytoscape.esm.min.js"));
copyFileSync(join(root, "node_modules/cytoscape/LICENSE"), join(root, "vendor/cytoscape.LICENSE"));
writeFileSync(join(root, "vendor/VERSIONS.txt"), `cytoscape ${pkg.version} (dist/cytoscape.esm.min.mjs saved as vendor/cytoscape.esm.min.js, MIT)\n`);
console.log(`vendored cytoscape ${pkg.version}`);
