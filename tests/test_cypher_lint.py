"""Every Cypher file passes Neo4j's own front-end; broken files are caught with a location.

The linter (node) starts in ~1 s and Neo4j's parser takes up to a second or two per query,
so each group of files is linted in one run (module fixtures) rather than once per test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import neurograph.lint as lint_module
from neurograph.lint import LINTER, ROOT, LintError, LintUnavailable, lint_cypher, main
from neurograph.queries import CYPHER_DIR

# name -> (file text, what must be reported as an error: (line, col, message part) or message parts)
CASES: dict[str, str] = {
    "syntax.cypher": "// params: $key\nMATCH (n:Neuron {key: $key}\nRETURN n\n",
    "undefined.cypher": "// params: $key\nMATCH (n:Neuron {key: $key})\nWITH n.key AS k\nRETURN n\n",
    "types.cypher": "// params:\nMATCH (n:Neuron)\nRETURN n LIMIT 'ten'\n",
    "params.cypher": ("// params: $rows [{key, props: {a, b}}]\nUNWIND $rows AS r\n"
                      "MATCH (n:Neuron {key: r.key}) SET n += r.props, n.x = $extra\n"),
    # a label typo, and a FalkorDB-only function that Neo4j lacks
    "vocab.cypher": "// params:\nMATCH (n:Nueron) RETURN toJSON(n) AS j\n",
    "deprecated.cypher": "// params:\nMATCH (n:Neuron) RETURN id(n) AS i\n",
    "good.cypher": ("// params: $keys [string], $kinds [string] or null, $min_weight (float or null), $limit\n"
                    "UNWIND $keys AS k MATCH (n:Neuron {key: k})-[e:COMPOSES]->(m:Neuron)\n"
                    "WHERE ($kinds IS NULL OR e.kind IN $kinds) AND abs(e.weight) >= coalesce($min_weight, 0)\n"
                    "RETURN k, collect(m.key)[..$limit] AS out\n"),
    # a schema file is checked statement by statement: the broken second one is located
    "multi.cypher": ("CREATE CONSTRAINT a IF NOT EXISTS FOR (n:Model) REQUIRE n.key IS UNIQUE;\n"
                     "CREATE INDEX b IF NOT EXISTS FOR (n:Neuron) ON (n.model, n.layer;\n"
                     "CREATE INDEX c IF NOT EXISTS FOR (n:Token) ON (n.text);\n"),
    "search.falkordb.cypher": "CALL db.idx.fulltext.queryNodes('Explanation', 'x') YIELD node RETURN node\n",
}


@pytest.fixture(scope="module")
def library_report() -> dict:
    # Only the FalkorDB dialect is skipped: named queries, recipes and the Neo4j schema all count.
    expected = [p for p in CYPHER_DIR.rglob("*.cypher")
                if not p.name.endswith(".falkordb.cypher") and p != CYPHER_DIR / "schema" / "falkordb.cypher"]
    proc = subprocess.run(["node", str(LINTER), "--json", str(CYPHER_DIR)], capture_output=True, text=True)
    assert proc.returncode in (0, 1), proc.stderr
    return {**json.loads(proc.stdout), "expected": len(expected)}


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[LintError]]:
    folder = tmp_path_factory.mktemp("cypher_cases")
    for name, text in CASES.items():
        (folder / name).write_text(text)
    found = lint_cypher([folder])  # one run for every case
    return {name: [d for d in found if Path(d.file).name == name] for name in CASES}


def _errors(found: list[LintError]) -> list[LintError]:
    return [d for d in found if d.severity == "error"]


def test_cypher_library_lints_clean(library_report):
    errors = [d for d in library_report["diagnostics"] if d["severity"] == "error"]
    assert errors == [], "\n".join(f"{d['file']}:{d['line']}:{d['col']}: {d['message']}" for d in errors)


def test_every_library_file_is_checked(library_report):
    assert library_report["files"] == library_report["expected"] > 0


def test_syntax_error_fails(cases):
    errors = _errors(cases["syntax.cypher"])
    assert errors and errors[0].line == 3 and "Invalid input" in errors[0].message


def test_undefined_variable_fails(cases):
    errors = _errors(cases["undefined.cypher"])
    assert [(e.line, e.col, e.message) for e in errors] == [(4, 8, "Variable `n` not defined")]


def test_type_mismatch_fails(cases):
    assert any("Type mismatch" in e.message for e in _errors(cases["types.cypher"]))


def test_parameter_missing_from_header_fails(cases):
    assert [e.message for e in _errors(cases["params.cypher"])] == ["Parameter $extra is not defined."]


def test_unknown_label_and_function_fail(cases):
    messages = " | ".join(e.message for e in _errors(cases["vocab.cypher"]))
    assert "Label Nueron" in messages and "Function toJSON" in messages


def test_header_parameters_and_clean_query_pass(cases):
    assert cases["good.cypher"] == []


def test_deprecation_is_a_warning_only(cases):
    found = cases["deprecated.cypher"]
    assert found and _errors(found) == []


def test_statements_are_checked_one_by_one(cases):
    assert [e.line for e in _errors(cases["multi.cypher"])] == [2]


def test_falkordb_dialect_is_skipped(cases):
    assert cases["search.falkordb.cypher"] == []


def test_cli_exit_status(tmp_path):
    bad = tmp_path / "bad.cypher"
    bad.write_text("RETURN x\n")
    proc = subprocess.run([sys.executable, "-m", "neurograph.lint", str(bad)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"{bad}:1:8: Variable `x` not defined" in proc.stdout


def test_missing_install_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lint_module, "LINTER_DIR", tmp_path)  # a checkout without node_modules
    with pytest.raises(LintUnavailable, match="npm ci --prefix tools/cypher-lint"):
        lint_cypher([CYPHER_DIR])
    assert main([str(CYPHER_DIR)]) == 2
    assert "npm ci --prefix tools/cypher-lint" in capsys.readouterr().err
