#!/usr/bin/env node
// Check Cypher files with Neo4j's own front-end (syntax + semantic analysis, offline).
//
//   npm ci --prefix tools/cypher-lint
//   node tools/cypher-lint/lint.mjs cypher/                 # file:line:col: message
//   node tools/cypher-lint/lint.mjs --json cypher/x.cypher  # machine-readable, for neurograph/lint.py
//
// Exit status: 0 clean (warnings allowed), 1 any error, 2 bad usage / unreadable file.
//
// What fails: every diagnostic Neo4j reports as an error (syntax, undefined variables,
// type mismatches, unknown functions/procedures, undeclared parameters) plus labels and
// relationship types that no write query in cypher/ ever creates (typos such as :Nueron).
// What is only printed: deprecations and other warnings, since FalkorDB sometimes needs the
// older form (id(n)) that Neo4j merely deprecates.
//
// FalkorDB dialect files are skipped: cypher/schema/falkordb.cypher and *.falkordb.cypher.

import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lintCypherQuery, testData } from '@neo4j-cypher/language-support';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_CYPHER = resolve(HERE, '..', '..', 'cypher');
const VERSION = 'CYPHER 5'; // Neo4j 5 LTS, what docker-compose.yml runs

// Neo4j's built-in function and procedure signatures ship with the package (its test data
// mirrors a Neo4j 5 server). APOC is dropped: our deployment does not install it.
const withoutApoc = (registry) =>
  Object.fromEntries(Object.entries(registry ?? {}).filter(([name]) => !name.startsWith('apoc.')));
const FUNCTIONS = { [VERSION]: withoutApoc(testData.mockSchema.functions[VERSION]) };
const PROCEDURES = { [VERSION]: withoutApoc(testData.mockSchema.procedures[VERSION]) };

export function isFalkorDialect(path) {
  const name = basename(path);
  return name.endsWith('.falkordb.cypher') || (name === 'falkordb.cypher' && basename(dirname(path)) === 'schema');
}

export function collectFiles(paths) {
  const out = [];
  const walk = (p) => {
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const name of readdirSync(p).sort()) walk(join(p, name));
    } else if (p.endsWith('.cypher') && !isFalkorDialect(p)) {
      out.push(p);
    }
  };
  for (const p of paths) {
    if (!existsSync(p)) throw new Error(`no such file or directory: ${p}`);
    if (statSync(p).isFile() && isFalkorDialect(p)) {
      process.stderr.write(`${p}: skipped (FalkorDB dialect)\n`);
      continue;
    }
    walk(p);
  }
  return out;
}

// Split "a, b [{x, y}], c" on top-level commas only.
function splitTopLevel(s) {
  const parts = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if ('[{('.includes(ch)) depth++;
    if (']})'.includes(ch)) depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) parts.push(cur);
  return parts.map((p) => p.trim()).filter(Boolean);
}

// A plausible value per parameter: lists of maps for $rows, numbers for counts and
// positions, strings otherwise. Only presence matters to the linter.
const INTS = /^(limit|k|n|top|skip|offset|layer|index|head|rank|depth|id|token_id|data_index|page|size|hops|max_hops|min_layer|max_layer)$/;
const FLOATS = /^(weight|min_weight|threshold|score|min_score|alpha)$/;
export function exampleValue(name, spec) {
  if (spec.startsWith('[{') || name === 'rows') return [{}];
  if (spec.startsWith('[')) return ['x'];
  const quoted = spec.match(/'([^']*)'/);
  if (quoted) return quoted[1];
  if (/\bint(eger)?\b/i.test(spec) || INTS.test(name)) return 1;
  if (/\bfloat\b/i.test(spec) || FLOATS.test(name)) return 0.5;
  if (/\bbool(ean)?\b/i.test(spec)) return true;
  return 'x';
}

// `// params: $rows [{key, model}], $limit` -> {rows: [{}], limit: 1}; every header line counts.
export function headerParams(text) {
  const params = {};
  for (const m of text.matchAll(/^[ \t]*\/\/[ \t]*params:[ \t]*(.*)$/gm)) {
    for (const item of splitTopLevel(m[1])) {
      const pm = item.match(/^\$`?([A-Za-z_][A-Za-z0-9_]*)`?(.*)$/s);
      if (pm) params[pm[1]] = exampleValue(pm[1], pm[2].trim());
    }
  }
  return params;
}

// The graph's vocabulary: labels and relationship types that write queries create.
export function graphVocabulary(cypherDir) {
  const labels = new Set();
  const types = new Set();
  if (!existsSync(cypherDir)) return null;
  for (const f of collectFiles([cypherDir])) {
    if (basename(dirname(f)) === 'schema') continue;
    const body = readFileSync(f, 'utf8').replace(/\/\/[^\n]*/g, '');
    if (!/\b(MERGE|CREATE)\b/i.test(body)) continue;
    for (const m of body.matchAll(/\(\s*`?\w*`?\s*:\s*`?(\w+)/g)) labels.add(m[1]);
    for (const m of body.matchAll(/\[\s*`?\w*`?\s*:\s*`?(\w+)/g)) types.add(m[1]);
  }
  return { labels: [...labels].sort(), relationshipTypes: [...types].sort() };
}

const NOT_PRESENT = /^(Label|Relationship type) \S+ is not present in the database/;

export function lintText(text, vocabulary) {
  const schema = {
    parameters: headerParams(text),
    functions: FUNCTIONS,
    procedures: PROCEDURES,
    defaultLanguage: VERSION,
    ...(vocabulary ?? {}),
  };
  const { diagnostics } = lintCypherQuery(text, schema);
  return diagnostics.map((d) => ({
    line: d.range.start.line + 1,
    col: d.range.start.character + 1,
    // Unknown labels/types are warnings to Neo4j (the database may gain them later);
    // for us the write queries define the whole model, so a stranger is a typo.
    severity: d.severity === 1 || NOT_PRESENT.test(d.message) ? 'error' : 'warning',
    message: d.message.replace(/ Make sure you didn't misspell it.*$/s, ''),
  }));
}

function main(argv) {
  const json = argv.includes('--json');
  const args = argv.filter((a) => a !== '--json');
  if (args.includes('-h') || args.includes('--help')) {
    process.stdout.write('usage: lint.mjs [--json] [FILE_OR_DIR ...]   (default: the repository cypher/)\n');
    return 0;
  }
  let files;
  try {
    files = collectFiles(args.length ? args : [REPO_CYPHER]);
  } catch (e) {
    process.stderr.write(`${e.message}\n`);
    return 2;
  }
  const vocabulary = graphVocabulary(REPO_CYPHER);
  const results = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const d of lintText(text, vocabulary)) results.push({ file, ...d });
  }
  if (json) {
    process.stdout.write(JSON.stringify({ files: files.length, diagnostics: results }) + '\n');
  } else {
    for (const r of results) {
      const where = `${relative(process.cwd(), r.file) || r.file}:${r.line}:${r.col}`;
      process.stdout.write(`${where}: ${r.severity === 'error' ? '' : 'warning: '}${r.message}\n`);
    }
    const errors = results.filter((r) => r.severity === 'error').length;
    process.stderr.write(`${files.length} file(s) checked, ${errors} error(s), ${results.length - errors} warning(s)\n`);
  }
  return results.some((r) => r.severity === 'error') ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
