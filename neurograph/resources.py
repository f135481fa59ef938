"""Where the files NeuroGraph runs and serves live: ``cypher/``, ``graphql/`` and ``web/``.

In a checkout they are the top-level folders, the place to edit them. An installed wheel
carries copies as package data (``neurograph/_data/<folder>``, copied there by the build step
in setup.py), found with importlib.resources.

    resource_dir("cypher") / "ping.cypher"
    GRAPHQL_DIR / "neuron_page.graphql"
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

FOLDERS = ("cypher", "graphql", "web")


def resource_dir(name: str) -> Path:
    """The folder ``name`` (one of FOLDERS): the installed package's copy, else the checkout's."""
    if name not in FOLDERS:
        raise ValueError(f"unknown resource folder {name!r}: one of {FOLDERS}")
    packaged = resources.files("neurograph") / "_data" / name
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / name


CYPHER_DIR = resource_dir("cypher")
GRAPHQL_DIR = resource_dir("graphql")  # the SDL and the example operations (the UI's neuron page is one)
WEB_DIR = resource_dir("web")
