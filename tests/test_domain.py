"""The graph's keys and its vocabulary of neuron properties: one parser, one set of names."""

from __future__ import annotations

import pytest

from loaders.synthetic import write_synthetic_graph
from neurograph.domain import (
    UnitKey, head_key, neuron_key, neuron_prop_rows, neuron_props, parse_key, parse_neuron_key, token_key,
)
from neurograph.errors import InvalidKey


def test_parse_key_reads_what_the_key_functions_write():
    assert parse_key(neuron_key("gpt2-small.v1", 3, 17)) == UnitKey("Neuron", "gpt2-small.v1/3/17", "gpt2-small.v1", 3, 17)
    assert parse_key(head_key("gpt2", 11, 0)) == UnitKey("Head", "gpt2/L11H0", "gpt2", 11, 0)
    assert parse_key(token_key("gpt2", 50256)) == UnitKey("Token", "gpt2/t50256", "gpt2", None, 50256)
    for not_a_unit in ("gpt2", "gpt2/L3", "gpt2/3/x", "gpt2/3/17/p0", "", "a b/1/2"):
        assert parse_key(not_a_unit) is None, not_a_unit
    assert parse_neuron_key("gpt2/3/17") == ("gpt2", 3, 17)
    with pytest.raises(InvalidKey):
        parse_neuron_key("gpt2/L3H5")


def test_neuron_props_take_the_graphs_names():
    assert neuron_props({"variance": 1.0, "skewness": 2.0, "kurtosis": 3.0, "quantile_boundaries": [0.5],
                         "sparsity": 0.1, "max_activation": 9.0, "min_activation": -1.0, "max_corr": 0.3}) == {
        "var": 1.0, "skew": 2.0, "kurt": 3.0, "quantiles": [0.5], "frac_active": 0.1, "max": 9.0, "min": -1.0,
        "max_corr": 0.3}
    assert neuron_props({"var": 1.0, "variance": 2.0}) == {"var": 1.0}  # the graph's own name wins
    rows = [{"key": "m/0/1", "props": {"sparsity": 0.2}}, {"key": "m/0/2", "props": {}}]
    assert list(neuron_prop_rows(iter(rows))) == [{"key": "m/0/1", "props": {"frac_active": 0.2}}, rows[1]]


async def test_the_store_writes_neuron_props_under_the_graphs_names(store):
    await write_synthetic_graph(store, "voc", n_layers=1, d_mlp=4, n_heads=1, d_vocab=20, k=2)
    await store.write("set_neuron_props", [{"key": "voc/0/1", "props": {"sparsity": 0.25, "quantile_boundaries": [1.0]}}])
    n = (await store.run("MATCH (n:Neuron {key: 'voc/0/1'}) RETURN n"))[0]["n"]
    assert n["frac_active"] == 0.25 and n["quantiles"] == [1.0]
    assert "sparsity" not in n and "quantile_boundaries" not in n
