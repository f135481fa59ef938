"""Check Cypher files with Neo4j's own front-end (``tools/cypher-lint``, Node.js).

No Neo4j server runs in development or CI, so every statement in ``cypher/`` is checked
offline by ``@neo4j-cypher/language-support``: syntax, semantic analysis (undefined
variables, type mismatches), unknown functions and procedures, parameters missing from the
``// params:`` header, and labels or relationship types that no write query creates.
FalkorDB dialect files (``cypher/schema/falkordb.cypher``, ``*.falkordb.cypher``) are skipped.

    >>> errors = lint_cypher(["cypher/"])          # doctest: +SKIP
    >>> [str(e) for e in errors if e.severity == "error"]   # doctest: +SKIP
    []

    $ npm ci --prefix tools/cypher-lint
    $ python -m neurograph.lint                     # the whole cypher/ folder; exit 1 on errors
    $ python -m neurograph.lint cypher/neuron_outputs.cypher
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .queries import CYPHER_DIR

ROOT = Path(__file__).resolve().parents[1]
LINTER_DIR = ROOT / "tools" / "cypher-lint"
LINTER = LINTER_DIR / "lint.mjs"
INSTALL_HINT = "npm ci --prefix tools/cypher-lint"


class LintUnavailable(RuntimeError):
    """Node.js or the linter's npm packages are missing."""


@dataclass(frozen=True)
class LintError:
    """One diagnostic: ``file:line:col: message`` (line and column start at 1).

        >>> LintError("q.cypher", 2, 5, "error", "Variable `x` not defined")
        LintError(file='q.cypher', line=2, col=5, severity='error', message='Variable `x` not defined')
    """

    file: str
    line: int
    col: int
    severity: str  # "error" fails the lint; "warning" (deprecations) is only shown
    message: str

    def __str__(self) -> str:
        tag = "" if self.severity == "error" else "warning: "
        return f"{self.file}:{self.line}:{self.col}: {tag}{self.message}"


_HEADER = re.compile(r"^[ \t]*//[ \t]*params:[ \t]*(.*)$", re.MULTILINE)
_PARAM = re.compile(r"^\$`?([A-Za-z_][A-Za-z0-9_]*)`?(.*)$", re.DOTALL)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets: "a, b [{x, y}]" -> ["a", "b [{x, y}]"]."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[{("
        depth -= ch in "]})"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def header_params(text: str) -> dict[str, str]:
    """The ``// params:`` header of a Cypher file: parameter name -> the rest of its entry.

        >>> header_params("// params: $rows [{key, props: {a}}], $limit (int)\nRETURN 1")
        {'rows': '[{key, props: {a}}]', 'limit': '(int)'}
    """
    params: dict[str, str] = {}
    for line in _HEADER.findall(text):
        for item in _split_top_level(line):
            m = _PARAM.match(item)
            if m:
                params[m.group(1)] = m.group(2).strip()
    return params


def row_fields(spec: str) -> list[str]:
    """Top-level field names of a ``$rows [{a, b, props: {…}}]`` entry.

        >>> row_fields("[{key, model, props: {…}}]")
        ['key', 'model', 'props']
    """
    m = re.match(r"^\[\{(.*)\}\]", spec.strip(), re.DOTALL)
    if not m:
        return []
    return [f.split(":")[0].strip() for f in _split_top_level(m.group(1))]


def _node() -> str:
    node = os.environ.get("NODE") or shutil.which("node")
    if not node:
        raise LintUnavailable(f"Node.js is not installed: install node >= 20, then run `{INSTALL_HINT}`")
    if not (LINTER_DIR / "node_modules" / "@neo4j-cypher" / "language-support").is_dir():
        raise LintUnavailable(f"the Cypher linter's packages are missing: run `{INSTALL_HINT}`")
    return node


def lint_cypher(paths: Iterable[str | os.PathLike[str]] | None = None, *, timeout: float = 300) -> list[LintError]:
    """Lint files or folders (default: the whole ``cypher/``); returns errors and warnings.

    Raises LintUnavailable when node or the npm install is missing."""
    targets = [str(p) for p in (paths if paths is not None else [CYPHER_DIR])]
    proc = subprocess.run([_node(), str(LINTER), "--json", *targets], capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode not in (0, 1):
        raise LintUnavailable(f"cypher linter failed (exit {proc.returncode}): {proc.stderr.strip()}")
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise LintUnavailable(f"cypher linter printed no report: {proc.stderr.strip() or proc.stdout[:200]}") from e
    return [LintError(d["file"], d["line"], d["col"], d["severity"], d["message"]) for d in report["diagnostics"]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neurograph.lint",
                                     description="Check Cypher files with Neo4j's front-end (offline).")
    parser.add_argument("paths", nargs="*", help="files or folders (default: cypher/)")
    args = parser.parse_args(argv)
    try:
        found = lint_cypher(args.paths or None)
    except LintUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for d in found:
        print(d)
    errors = sum(d.severity == "error" for d in found)
    print(f"{errors} error(s), {len(found) - errors} warning(s)", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
