"""Architecture rules that keep the API light and the dependencies one-way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_api_imports_neither_torch_nor_loaders():
    code = ("import sys, neurograph.api.app, neurograph.cli, neurograph.client, neurograph.topology, "
            "neurograph.export, neurograph.search; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformer_lens', 'loaders')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_neurograph_never_imports_loaders_at_module_level():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "neurograph").rglob("*.py")
                 for line in p.read_text().splitlines()
                 if line.startswith(("from loaders", "import loaders"))]
    assert offenders == []


def test_no_python_package_named_graphql_shadows_graphql_core():
    assert not (ROOT / "graphql" / "__init__.py").exists()
