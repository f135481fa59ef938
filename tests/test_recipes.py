"""Every power-user recipe in cypher/recipes/ runs read-only on FalkorDB and answers its question
on a small graph written here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from neurograph.domain import (ModelInfo, example_key, head_key, layer_key, neuron_key, pattern_key,
                               token_key)
from neurograph.queries import CYPHER_DIR, parse_file
from neurograph.topology import compute_topology

RECIPES = CYPHER_DIR / "recipes"
M = "rec"


def nk(layer: int, index: int) -> str:
    return neuron_key(M, layer, index)


async def _graph(store) -> None:
    """3 layers x 4 neurons, 2 heads per layer, a few tokens, texts and N2G patterns."""
    await store.write("upsert_models", [ModelInfo(M, 3, 4, n_heads=2).row()])
    await store.write("upsert_layers", [{"key": layer_key(M, l), "model": M, "layer": l, "n_neurons": 4}
                                        for l in range(3)])
    await store.write("upsert_neurons", [{"key": nk(l, i), "model": M, "layer": l, "index": i,
                                          "layer_key": layer_key(M, l), "props": {}}
                                         for l in range(3) for i in range(4)])
    await store.write("upsert_heads", [{"key": head_key(M, l, h), "model": M, "layer": l, "head": h,
                                        "layer_key": layer_key(M, l)} for l in range(3) for h in range(2)])
    composes = [((0, 0), (1, 1), "virtual", 0.8), ((0, 0), (1, 2), "virtual", -0.9),
                ((0, 0), (2, 0), "virtual", 0.1), ((0, 0), (1, 3), "gate_virtual", 0.3),
                ((0, 0), (1, 1), "in_out", 0.95), ((1, 1), (2, 3), "virtual", 0.5),
                ((1, 2), (2, 3), "virtual", 0.6), ((0, 1), (1, 0), "virtual", 0.2)]
    await store.write("upsert_composes", [{"src": nk(*a), "dst": nk(*b), "kind": k, "weight": w, "rank": r}
                                          for r, (a, b, k, w) in enumerate(composes)])
    correlates = [((0, 1), (1, 1), 0.95), ((1, 1), (0, 1), 0.95),   # stored both ways: report once
                  ((2, 2), (0, 2), -0.97), ((1, 0), (1, 3), 0.99),  # same layer: not cross-layer
                  ((0, 3), (2, 1), 0.4)]
    await store.write("upsert_correlates", [{"src": nk(*a), "dst": nk(*b), "weight": w, "rank": 0}
                                            for a, b, w in correlates])
    await store.write("upsert_neuron_to_head", [
        {"neuron": nk(0, 0), "head": head_key(M, 1, 0), "kind": "Q", "weight": 0.7, "rank": 0},
        {"neuron": nk(0, 0), "head": head_key(M, 1, 1), "kind": "K", "weight": -0.2, "rank": 1}])
    await store.write("upsert_head_to_neuron", [
        {"neuron": nk(0, 0), "head": head_key(M, 0, 0), "kind": "O", "weight": 0.4, "rank": 0}])
    vocab = ["In", " the", " God", " said", "And", "Let"]
    await store.write("upsert_tokens", [{"key": token_key(M, i), "model": M, "id": i, "text": t}
                                        for i, t in enumerate(vocab)])
    await store.write("upsert_token_effects", [
        {"neuron": nk(0, 0), "token": token_key(M, i), "kind": kind, "weight": w, "rank": 0, "count": None}
        for i, kind, w in ((2, "output", 2.0), (1, "output", -3.0), (0, "output", 0.5), (5, "input", 9.0))])
    texts = [["In", " the", " beginning", " God"], ["And", " God", " said"], ["Let", " there", " be"]]
    await store.write("upsert_examples", [{"key": example_key(M, d), "model": M, "tokens": t, "data_index": d,
                                           "source": "kjv"} for d, t in enumerate(texts)])
    fires = [((0, 1), 0, 3, 2.5), ((0, 1), 1, 1, 1.5), ((1, 0), 1, 1, 3.0), ((1, 0), 2, 0, 0.7),
             ((2, 2), 2, 1, 1.0)]
    await store.write("upsert_activations", [
        {"neuron": nk(*n), "example": example_key(M, d), "kind": "max", "rank": d, "pivot": pivot,
         "activations": [0.0] * pivot + [a], "max_activation": a, "min_activation": 0.0}
        for n, d, pivot, a in fires])
    patterns = {(0, 1): [(" God", "activating"), ("And", "important")],
                (1, 0): [(" God", "activating"), (" said", "important"), ("And", "important")],
                (2, 2): [("Let", "activating")]}
    await store.write("upsert_pattern_nodes", [
        {"key": pattern_key(M, l, i, p), "neuron": nk(l, i), "token": tok, "token_key": None, "depth": p,
         "role": role, "activation": 1.0 if role == "activating" else None, "is_end": role == "activating"}
        for (l, i), nodes in patterns.items() for p, (tok, role) in enumerate(nodes)])


def _downstream(rows: list[dict]) -> None:
    assert [r["neuron"] for r in rows] == [nk(1, 2), nk(1, 1), nk(1, 3), nk(2, 0)]  # by |weight|
    assert {r["kind"] for r in rows} == {"virtual", "gate_virtual"}  # the in_out cosine is left out
    assert rows[0]["weight"] == -0.9


def _two_hop(rows: list[dict]) -> None:
    # 0/0 -> 1/1 has two kinds (virtual, in_out): each is its own path
    assert [(r["via"], r["first_kind"]) for r in rows] == [(nk(1, 2), "virtual"), (nk(1, 1), "in_out"),
                                                           (nk(1, 1), "virtual")]
    assert [r["score"] for r in rows] == pytest.approx([-0.9 * 0.6, 0.95 * 0.5, 0.8 * 0.5])


def _firing(rows: list[dict]) -> None:
    assert [r["neuron"] for r in rows] == [nk(0, 1), nk(1, 0)]  # 0/1 peaks on ' God' twice
    assert rows[0]["texts"] == 2 and rows[0]["max_activation"] == 2.5
    assert rows[1]["texts"] == 1


def _heads(rows: list[dict]) -> None:
    assert [(r["head"], r["kind"]) for r in rows] == [(head_key(M, 1, 0), "Q"), (head_key(M, 0, 0), "O"),
                                                      (head_key(M, 1, 1), "K")]
    assert [r["direction"] for r in rows] == ["reads neuron", "writes to neuron", "reads neuron"]


def _layerwise(rows: list[dict]) -> None:
    got = {(r["from_layer"], r["to_layer"], r["kind"]): r["edges"] for r in rows}
    assert got == {(0, 1, "virtual"): 3, (0, 1, "gate_virtual"): 1, (0, 1, "in_out"): 1,
                   (0, 2, "virtual"): 1, (1, 2, "virtual"): 2}
    assert sum(got.values()) == 8


def _correlated(rows: list[dict]) -> None:
    pairs = [(r["first"], r["second"]) for r in rows]
    assert pairs == [(nk(2, 2), nk(0, 2)), (nk(0, 1), nk(1, 1)), (nk(0, 3), nk(2, 1))]
    assert all(r["first_layer"] != r["second_layer"] for r in rows)


def _shared(rows: list[dict]) -> None:
    assert [r["neuron"] for r in rows] == [nk(1, 0)]
    assert sorted(rows[0]["shared"]) == ["activating: God", "important:And"]


def _promoted(rows: list[dict]) -> None:
    assert [(r["token"], r["direction"]) for r in rows] == [(" the", "suppresses"), (" God", "promotes"),
                                                            ("In", "promotes")]


CASES: dict[str, tuple[dict[str, Any], Callable[[list[dict]], None]]] = {
    "downstream_by_virtual_weight": ({"key": nk(0, 0), "limit": 10}, _downstream),
    "two_hop_paths": ({"src": nk(0, 0), "dst": nk(2, 3), "limit": 10}, _two_hop),
    "neurons_firing_on_token": ({"model": M, "token": " God", "limit": 10}, _firing),
    "heads_composed_most": ({"key": nk(0, 0), "limit": 10}, _heads),
    "layerwise_edge_counts": ({"model": M}, _layerwise),
    "top_correlated_cross_layer": ({"model": M, "limit": 10}, _correlated),
    "shared_pattern_tokens": ({"key": nk(0, 1), "limit": 10}, _shared),
    "tokens_promoted": ({"key": nk(0, 0), "limit": 10}, _promoted),
}


def recipe_files() -> list[Path]:
    return sorted(RECIPES.glob("*.cypher"))


def test_every_recipe_says_its_question_and_params():
    files = recipe_files()
    assert 6 <= len(files) <= 10
    for path in files:
        header = [l for l in path.read_text().splitlines() if l.startswith("//")]
        assert header[0].startswith("// Question:") and "?" in " ".join(header), path
        assert header[-1].startswith("// params:"), path
        q = parse_file(path)
        assert not q.writes, f"{path.name} writes"
    # every recipe is exercised below (neurons_by_role has its own test)
    assert {p.stem for p in files} == set(CASES) | {"neurons_by_role"}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_recipe(store, name):
    await _graph(store)
    params, check = CASES[name]
    q = parse_file(RECIPES / f"{name}.cypher")
    assert set(q.params) == set(params), "the header lists exactly the parameters the test passes"
    rows, truncated = await store.read_only(q.text, params)  # the power-user path: read-only, bounded
    assert rows and not truncated
    check(rows)


async def test_neurons_by_role_after_topology(store):
    await _graph(store)
    summary = await compute_topology(store, M, kinds=("COMPOSES:virtual", "CORRELATES"))
    assert sum(summary["roles"].values()) == summary["nodes"] == 12
    q = parse_file(RECIPES / "neurons_by_role.cypher")
    for role, count in summary["roles"].items():
        rows, _ = await store.read_only(q.text, {"model": M, "role": role, "limit": 100})
        assert len(rows) == count
        assert all(r["community"] is not None and r["participation"] is not None for r in rows)
        between = [r["betweenness"] for r in rows]
        assert between == sorted(between, reverse=True)
    rows, _ = await store.read_only(q.text, {"model": M, "role": "no such role", "limit": 100})
    assert rows == []
