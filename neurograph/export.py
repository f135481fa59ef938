"""Export the whole graph (or one model) and import it again, in pages of bounded memory.

Formats, written under ``out_dir``:

- ``neo4j-csv``: the CSV input of ``neo4j-admin database import full`` — ``neo4j-csv/nodes_<Label>.csv``
  (``key:ID(<Label>)``, typed property columns, ``:LABEL``) and one relationships file per type
  and label pair, ``neo4j-csv/rels_<TYPE>__<Start>__<End>.csv`` (``:START_ID(<Start>)``,
  ``:END_ID(<End>)``, ``:TYPE``, typed properties). Each label is its own ID space. The exact
  command line is in ``neo4j-csv/import.sh``.
- ``graphml``: ``graph.graphml`` (node ids are keys; ``_label`` / ``_type`` attributes; lists as
  JSON strings), written as a stream and readable by ``networkx.read_graphml``.
- ``jsonl``: ``graph.jsonl``, one node or edge per line, nodes first; ``import_jsonl`` loads it
  into any store (round trip, or moving between FalkorDB and Neo4j).

    summary = await export_graph(store, "out/", formats=("neo4j-csv", "jsonl"), model="gpt2")
    await import_jsonl(other_store, "out/graph.jsonl")

The database is read once, page by page in key order (keyset cursors), into the JSON Lines
file while property types are collected; CSV and GraphML are then written from that file,
since both need their column types before the first row.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator
from xml.sax.saxutils import escape, quoteattr

from .domain import NODE_LABELS
from .errors import NeuroGraphError
from .progress import Counter
from .queries import QUERIES
from .store.base import Store

FORMATS = ("neo4j-csv", "graphml", "jsonl")
PAGE_SIZE = 2000
IDENTITY = ("kind", "rank", "role")  # edge properties that tell parallel edges apart
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# neo4j-admin column types, in the order a mixed column widens to.
_SCALAR = {bool: "boolean", int: "long", float: "double", str: "string"}


class ExportError(NeuroGraphError):
    """A malformed export file or an unknown format."""


def _ident(name: str) -> str:
    if not _NAME.match(name):
        raise ExportError(f"not a label or relationship type this exporter can name: {name!r}")
    return name


def _text(query: str, **labels: str) -> str:
    """A named query with its placeholder label/type replaced (labels cannot be parameters)."""
    text = QUERIES[query].text
    for placeholder, name in labels.items():
        if placeholder not in text:
            raise AssertionError(f"{query}.cypher lost its placeholder {placeholder!r}")
        text = text.replace(placeholder, placeholder.split(":")[0] + ":" + _ident(name))
    return text


# --- property types ---------------------------------------------------------------------------
def _widen(kinds: set[str]) -> str:
    if len(kinds) == 1:
        return next(iter(kinds))
    if kinds <= {"long", "double"}:
        return "double"
    if all(k.endswith("[]") for k in kinds) and {k[:-2] for k in kinds} <= {"long", "double"}:
        return "double[]"
    return "string[]" if all(k.endswith("[]") for k in kinds) else "string"


class _Schema:
    """Property types per label or relationship type, gathered while the JSONL is written."""

    def __init__(self) -> None:
        self.kinds: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.empty_lists: dict[str, set[str]] = defaultdict(set)
        self.semicolon = False  # a string in an array holds ';': use another array delimiter
        self.newline = False    # a string holds a line break: neo4j-admin needs --multiline-fields

    def see(self, group: str, props: dict[str, Any]) -> None:
        kinds = self.kinds[group]
        for name, value in props.items():
            t = type(value)
            if t is list:
                if not value:
                    self.empty_lists[group].add(name)  # an empty list fits any array type
                    continue
                types = {type(v) for v in value}
                inner = {_SCALAR.get(x, "string") for x in types if x is not type(None)}
                if inner:
                    kinds[name].add(_widen(inner) + "[]")
                if str in types:
                    for v in value:
                        if type(v) is str:
                            self.newline |= "\n" in v or "\r" in v
                            self.semicolon |= ";" in v
            elif value is not None:
                kinds[name].add(_SCALAR.get(t, "string"))
                if t is str:
                    self.newline |= "\n" in value or "\r" in value

    def columns(self, group: str, skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        names = set(self.kinds[group]) | self.empty_lists[group]
        cols = []
        for name in sorted(names - set(skip)):
            kinds = self.kinds[group].get(name)
            cols.append((name, _widen(kinds) if kinds else "string[]"))
        return cols


# --- reading the store --------------------------------------------------------------------------
async def _pages(store: Store, query: str, label: str, model: str | None, page_size: int,
                 cursor: str, weigh: Callable[[dict], int] | None = None) -> AsyncIterator[list[dict]]:
    """Keyset pages of a label's nodes. With ``weigh`` (rows per node, e.g. its edge count) the
    number of nodes per page adapts so a page holds about ``page_size`` rows: memory stays
    bounded whether a node has two edges or two thousand."""
    text = _text(query, **{"(n:Neuron" if query == "export_nodes" else "(a:Neuron": label})
    after = ""
    limit = page_size if weigh is None else max(1, page_size // 50)
    while True:
        rows = await store.run(text, {"after": after, "model": model, "limit": limit})
        if not rows:
            return
        yield rows
        after = rows[-1][cursor]
        if len(rows) < limit:
            return
        if weigh is not None:
            per_node = max(1.0, sum(weigh(r) for r in rows) / len(rows))
            limit = max(1, min(page_size, int(page_size / per_node)))


def _in_model(key: str, model: str | None) -> bool:
    return model is None or key == model or key.startswith(model + "/")


async def _dump_jsonl(store: Store, path: Path, model: str | None, page_size: int, schema: _Schema,
                      advance: Callable[[int], None]) -> tuple[dict[str, int], dict[str, int], set]:
    nodes: dict[str, int] = defaultdict(int)
    edges: dict[str, int] = defaultdict(int)
    pairs: set[tuple[str, str, str]] = set()
    with path.open("w", encoding="utf-8") as out:
        for label in NODE_LABELS:
            async for page in _pages(store, "export_nodes", label, model, page_size, "key"):
                for r in page:
                    schema.see(label, r["props"])
                    out.write(json.dumps({"node": label, "props": r["props"]}, ensure_ascii=False) + "\n")
                nodes[label] += len(page)
                advance(len(page))
        for label in NODE_LABELS:
            async for page in _pages(store, "export_edges", label, model, page_size, "src",
                                     weigh=lambda r: len(r["edges"])):
                for r in page:
                    for e in r["edges"]:
                        if not _in_model(e["dst"], model):
                            continue  # the other end is not exported: neo4j-admin would reject it
                        schema.see(e["type"], e["props"])
                        pairs.add((e["type"], label, e["dst_label"]))
                        out.write(json.dumps({"edge": e["type"], "src": r["src"], "src_label": label,
                                              "dst": e["dst"], "dst_label": e["dst_label"], "props": e["props"]},
                                             ensure_ascii=False) + "\n")
                        edges[e["type"]] += 1
    return dict(nodes), dict(edges), pairs


def iter_jsonl(path: str | Path) -> Iterator[dict]:
    """The records of a JSONL export: {"node": Label, "props"} or {"edge": TYPE, "src", ...}."""
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ExportError(f"{path}:{n}: not JSON: {e}") from e
            if not isinstance(rec, dict) or not isinstance(rec.get("props"), dict) or (
                    "node" not in rec and not {"edge", "src", "dst", "src_label", "dst_label"} <= rec.keys()):
                raise ExportError(f"{path}:{n}: not a node or edge record")
            yield rec


# --- neo4j-admin CSV ----------------------------------------------------------------------------
def _csv_str(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _csv_value(value: Any, kind: str, delim: str) -> str:
    """One field: unquoted empty = no property; strings and arrays always quoted."""
    if value is None:
        return ""
    if kind.endswith("[]"):
        items = value if isinstance(value, list) else [value]
        return _csv_str(delim.join(_scalar(v, kind[:-2]) for v in items))
    if kind == "string":
        return _csv_str(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    return _scalar(value, kind)


def _scalar(v: Any, kind: str) -> str:
    if kind == "boolean":
        return "true" if v else "false"
    if kind == "double":
        f = float(v)
        return "NaN" if math.isnan(f) else ("Infinity" if f == math.inf else "-Infinity" if f == -math.inf else repr(f))
    if kind == "long":
        return str(int(v))
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def _header(cols: list[tuple[str, str]]) -> list[str]:
    return [f"{name}:{kind}" if kind != "string" else name for name, kind in cols]


def _write_neo4j_csv(jsonl: Path, folder: Path, schema: _Schema, pairs: set, database: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):
        old.unlink()  # a previous export's files would be imported too
    delim = "\u001f" if schema.semicolon else ";"
    node_cols = {label: schema.columns(label, skip=("key",)) for label in NODE_LABELS}
    rel_cols = {t: schema.columns(t) for t, _, _ in pairs}
    handles: dict[Any, Any] = {}
    files: list[Path] = []

    def handle(group: Any, name: str, header: list[str]):
        if group not in handles:
            path = folder / name
            files.append(path)
            handles[group] = path.open("w", encoding="utf-8", newline="")
            handles[group].write(",".join(header) + "\n")
        return handles[group]

    try:
        for rec in iter_jsonl(jsonl):
            props = rec["props"]
            if "node" in rec:
                label = rec["node"]
                cols = node_cols[label]
                out = handle(label, f"nodes_{label}.csv", [f"key:ID({label})", *_header(cols), ":LABEL"])
                fields = [_csv_str(props["key"]), *(_csv_value(props.get(c), k, delim) for c, k in cols), label]
            else:
                t, s, d = rec["edge"], rec["src_label"], rec["dst_label"]
                cols = rel_cols[t]
                out = handle((t, s, d), f"rels_{t}__{s}__{d}.csv",
                             [f":START_ID({s})", f":END_ID({d})", ":TYPE", *_header(cols)])
                fields = [_csv_str(rec["src"]), _csv_str(rec["dst"]), t,
                          *(_csv_value(props.get(c), k, delim) for c, k in cols)]
            out.write(",".join(fields) + "\n")
    finally:
        for h in handles.values():
            h.close()

    script = folder / "import.sh"
    script.write_text(_import_script(files, delim, schema.newline, database))
    script.chmod(0o755)
    return [*files, script]


def _import_script(files: list[Path], delim: str, multiline: bool, database: str) -> str:
    command = f"neo4j-admin database import full {shlex.quote(database)}"
    args = ["--overwrite-destination=true",
            f"--array-delimiter={'U+001F' if delim != ';' else ';'}", "--id-type=string",
            f"--multiline-fields={'true' if multiline else 'false'}"]
    # Labels and types come from the files' :LABEL and :TYPE columns.
    args += [f'--nodes="$DIR/{f.name}"' for f in files if f.name.startswith("nodes_")]
    args += [f'--relationships="$DIR/{f.name}"' for f in files if f.name.startswith("rels_")]
    lines = " \\\n  ".join([command, *(a if "$DIR" in a else shlex.quote(a) for a in args)])
    return ("#!/bin/sh\n"
            "# Bulk-load this export into an empty, stopped Neo4j 5 database (see docs/neo4j.md).\n"
            "# Run where neo4j-admin is, with Neo4j stopped; DIR defaults to this script's folder.\n"
            "# With docker-compose.yml (export into ./data/neo4j-import, mounted at /import):\n"
            "#   docker compose stop neo4j\n"
            "#   docker compose run --rm --no-deps neo4j sh /import/neo4j-csv/import.sh\n"
            "#   docker compose up -d   # the API creates constraints and indexes when it connects\n"
            "set -eu\n"
            'DIR="${DIR:-$(cd "$(dirname "$0")" && pwd)}"\n'
            f"{lines}\n")


def read_neo4j_csv(folder: str | Path) -> Iterator[dict]:
    """Records (as ``iter_jsonl`` yields them) back from a neo4j-csv export folder.

    Good for round trips and checks, not a general neo4j-admin CSV reader: it knows the
    quoting and the types this module writes, and reads the array delimiter from import.sh."""
    folder = Path(folder)
    script = (folder / "import.sh").read_text()
    delim = "\u001f" if "U+001F" in script else ";"
    for path in sorted(folder.glob("nodes_*.csv")) + sorted(folder.glob("rels_*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            header = _split_csv_line(f.readline().rstrip("\n"))
            for fields in _csv_records(f):
                if len(fields) != len(header):
                    raise ExportError(f"{path}: {len(fields)} fields, header has {len(header)}")
                yield _record(header, fields, delim)


def _record(header: list[tuple[str, bool]], fields: list[tuple[str, bool]], delim: str) -> dict:
    rec: dict[str, Any] = {"props": {}}
    for (col, _), (raw, quoted) in zip(header, fields):
        name, _, kind = col.partition(":")
        if col.startswith(":START_ID("):
            rec["src"], rec["src_label"] = raw, col[len(":START_ID("):-1]
        elif col.startswith(":END_ID("):
            rec["dst"], rec["dst_label"] = raw, col[len(":END_ID("):-1]
        elif col == ":TYPE":
            rec["edge"] = raw
        elif col == ":LABEL":
            rec["node"] = raw
        elif kind.startswith("ID("):
            rec["props"][name] = raw
        elif quoted or raw != "":
            rec["props"][name] = _parse(raw, kind or "string", delim)
    return rec


def _parse(raw: str, kind: str, delim: str) -> Any:
    if kind.endswith("[]"):
        return [] if raw == "" else [_parse(x, kind[:-2], delim) for x in raw.split(delim)]
    if kind == "long":
        return int(raw)
    if kind == "double":
        return float(raw.replace("Infinity", "inf"))
    if kind == "boolean":
        return raw == "true"
    return raw


def _split_csv_line(line: str) -> list[tuple[str, bool]]:
    return next(_csv_records(iter([line + "\n"])))


def _csv_records(lines: Any) -> Iterator[list[tuple[str, bool]]]:
    """Fields as (text, was_quoted): quoted empty is an empty string, unquoted empty is null."""
    fields: list[tuple[str, bool]] = []
    cur, quoted, in_quotes = "", False, False
    for line in lines:
        i = 0
        while i < len(line):
            ch = line[i]
            if in_quotes:
                if ch == '"':
                    if i + 1 < len(line) and line[i + 1] == '"':
                        cur += '"'
                        i += 1
                    else:
                        in_quotes = False
                else:
                    cur += ch
            elif ch == '"':
                in_quotes = quoted = True
            elif ch == ",":
                fields.append((cur, quoted))
                cur, quoted = "", False
            elif ch == "\n":
                fields.append((cur, quoted))
                yield fields
                fields, cur, quoted = [], "", False
            else:
                cur += ch
            i += 1


# --- GraphML ------------------------------------------------------------------------------------
_GRAPHML_TYPE = {"boolean": "boolean", "long": "long", "double": "double", "string": "string"}


def _write_graphml(jsonl: Path, path: Path, schema: _Schema, pairs: set) -> Path:
    node_cols: dict[str, str] = {}
    for label in NODE_LABELS:
        for name, kind in schema.columns(label, skip=("key",)):
            node_cols[name] = kind if node_cols.get(name, kind) == kind else "string"
    edge_cols: dict[str, str] = {}
    for t in {t for t, _, _ in pairs}:
        for name, kind in schema.columns(t):
            edge_cols[name] = kind if edge_cols.get(name, kind) == kind else "string"

    def gtype(kind: str) -> str:
        return "string" if kind.endswith("[]") else _GRAPHML_TYPE[kind]

    def data(prefix: str, cols: dict[str, str], props: dict[str, Any]) -> str:
        out = []
        for name, value in props.items():
            if value is None or name not in cols:
                continue
            kind = cols[name]
            if kind.endswith("[]") or (kind == "string" and not isinstance(value, str)):
                text = json.dumps(value, ensure_ascii=False)
            elif kind == "boolean":
                text = "true" if value else "false"
            else:
                text = str(value) if kind != "double" else repr(float(value))
            out.append(f'<data key="{prefix}{_xml_id(name)}">{escape(_xml_text(text))}</data>')
        return "".join(out)

    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                  '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
                  'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                  'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
                  'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n')
        out.write('<key id="n__label" for="node" attr.name="_label" attr.type="string"/>\n')
        out.write('<key id="e__type" for="edge" attr.name="_type" attr.type="string"/>\n')
        for name, kind in sorted(node_cols.items()):
            out.write(f'<key id="n_{_xml_id(name)}" for="node" attr.name={quoteattr(name)} '
                      f'attr.type="{gtype(kind)}"/>\n')
        for name, kind in sorted(edge_cols.items()):
            out.write(f'<key id="e_{_xml_id(name)}" for="edge" attr.name={quoteattr(name)} '
                      f'attr.type="{gtype(kind)}"/>\n')
        out.write('<graph id="neurograph" edgedefault="directed">\n')
        for rec in iter_jsonl(jsonl):
            props = rec["props"]
            if "node" in rec:
                out.write(f'<node id={quoteattr(_xml_text(props["key"]))}><data key="n__label">{rec["node"]}</data>'
                          f'{data("n_", node_cols, props)}</node>\n')
            else:
                out.write(f'<edge source={quoteattr(_xml_text(rec["src"]))} target={quoteattr(_xml_text(rec["dst"]))}>'
                          f'<data key="e__type">{rec["edge"]}</data>{data("e_", edge_cols, props)}</edge>\n')
        out.write("</graph>\n</graphml>\n")
    return path


def _xml_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", lambda m: f"_x{ord(m.group()):04x}_", name)


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(s: str) -> str:
    # XML 1.0 cannot carry most control characters even escaped; tokens sometimes are one.
    return _XML_BAD.sub(lambda m: f"\\u{ord(m.group()):04x}", s)


# --- public API ---------------------------------------------------------------------------------
async def export_graph(store: Store, out_dir: str | Path, formats: tuple[str, ...] | list[str] = FORMATS,
                       model: str | None = None, *, page_size: int = PAGE_SIZE, progress: bool | None = None,
                       database: str = "neo4j") -> dict:
    """Write the graph (or one model's part) under ``out_dir`` in the given formats.

    Returns a summary: {"out_dir", "formats", "nodes": {label: n}, "edges": {type: n},
    "files": [...], "seconds"}. Memory stays bounded by ``page_size`` rows. A progress bar is
    shown on a terminal (``progress=None``), always (True) or never (False)."""
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise ExportError(f"unknown export format(s) {sorted(unknown) or formats}: choose from {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    jsonl = out / "graph.jsonl" if "jsonl" in formats else out / ".graph.jsonl.tmp"
    schema = _Schema()

    if progress is None:
        progress = sys.stderr.isatty()
    advance = Counter("export: nodes", enabled=progress)
    try:
        nodes, edges, pairs = await _dump_jsonl(store, jsonl, model, page_size, schema, advance)
        files: list[Path] = [jsonl] if "jsonl" in formats else []
        if "neo4j-csv" in formats:
            files += _write_neo4j_csv(jsonl, out / "neo4j-csv", schema, pairs, database)
        if "graphml" in formats:
            files.append(_write_graphml(jsonl, out / "graph.graphml", schema, pairs))
    finally:
        advance.close()
        if "jsonl" not in formats:
            jsonl.unlink(missing_ok=True)
    return {"out_dir": str(out), "formats": list(formats), "model": model, "nodes": nodes, "edges": edges,
            "files": [str(f) for f in files], "seconds": round(time.perf_counter() - t0, 3)}


async def import_jsonl(store: Store, path: str | Path, *, batch_size: int = 2000,
                       progress: Callable[[int], None] | None = None) -> dict:
    """Load a JSONL export into ``store``; idempotent, so an interrupted import is re-run.

    Returns {"nodes": {label: n}, "edges": {type: n}}. The file is validated while read: a
    malformed line raises ExportError, and the lines before it stay imported."""
    nodes: dict[str, int] = defaultdict(int)
    edges: dict[str, int] = defaultdict(int)
    batches: dict[Any, list[dict]] = defaultdict(list)

    async def flush(group: Any) -> None:
        rows = batches.pop(group, [])
        if not rows:
            return
        if isinstance(group, str):
            await store.run(_text("import_nodes", **{"(n:Neuron": group}), {"rows": rows}, write=True)
            nodes[group] += len(rows)
        else:
            t, s, d = group
            text = _text("import_edges", **{"(a:Neuron": s, "(b:Neuron": d, "[old:COMPOSES": t, "[e:COMPOSES": t})
            await store.run(text, {"rows": rows}, write=True)
            edges[t] += len(rows)
        if progress:
            progress(len(rows))

    seen_edges = False
    for rec in iter_jsonl(path):
        props = rec["props"]
        if "node" in rec:
            group: Any = _ident(rec["node"])
            if "key" not in props:
                raise ExportError(f"{path}: a {group} node without a key")
            row = {"key": props["key"], "props": props}
        else:
            if not seen_edges:  # every node exists before the first edge is matched
                for g in [g for g in batches if isinstance(g, str)]:
                    await flush(g)
                seen_edges = True
            group = (_ident(rec["edge"]), _ident(rec["src_label"]), _ident(rec["dst_label"]))
            row = {"src": rec["src"], "dst": rec["dst"], "props": props,
                   "ident": [k for k in IDENTITY if props.get(k) is not None]}
        batches[group].append(row)
        if len(batches[group]) >= batch_size:
            await flush(group)
    for g in sorted(batches, key=lambda g: not isinstance(g, str)):  # nodes before edges
        await flush(g)
    return {"nodes": dict(nodes), "edges": dict(edges)}


__all__ = ["FORMATS", "ExportError", "export_graph", "import_jsonl", "iter_jsonl", "read_neo4j_csv"]
