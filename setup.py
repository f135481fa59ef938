"""The wheel's build step: the top-level cypher/, graphql/ and web/ folders (the place to edit
them) are copied into the package as neurograph/_data/<folder>, where an installed NeuroGraph
finds them (neurograph/resources.py). Everything else is in pyproject.toml.

    pip wheel --no-deps .     # or: pip install .
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# folder -> the files of it that NeuroGraph runs or serves (not the web UI's npm tooling)
PACKAGE_DATA = {
    "cypher": ("*.cypher", "schema/*.cypher", "recipes/*.cypher"),
    "graphql": ("*.graphql",),
    "web": ("index.html", "graphiql.html", "css/*.css", "js/*.js", "js/*/*.js", "vendor/*"),
}


class build_py_with_data(build_py):  # noqa: N801 - setuptools' command naming
    """build_py, plus the copies of cypher/, graphql/ and web/ in the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the folders in place
            return
        target = Path(self.build_lib) / "neurograph" / "_data"
        for folder, patterns in PACKAGE_DATA.items():
            for pattern in patterns:
                for src in sorted((ROOT / folder).glob(pattern)):
                    if src.is_file():
                        dst = target / folder / src.relative_to(ROOT / folder)
                        dst.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(src, dst)


setup(cmdclass={"build_py": build_py_with_data})
