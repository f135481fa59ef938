"""The shared import machinery: keys agree with the graph model, --model-info forms, checks."""

from __future__ import annotations

import pytest

from loaders.importing import Checker, Plan, parse_model_info
from neurograph.domain import layer_key, neuron_key
from neurograph.errors import InputFileError


def test_plan_keys_are_the_domain_keys():
    plan = Plan("gpt2-small.v1")
    key = plan.neuron(3, 17, mean=0.5, skip=None)
    assert key == neuron_key("gpt2-small.v1", 3, 17)
    row = plan.neurons[key]
    assert row["layer_key"] == layer_key("gpt2-small.v1", 3) and row["props"] == {"mean": 0.5}
    with pytest.raises(Exception, match="invalid model name"):
        Plan("bad name/with slash")


def test_model_info_forms(tmp_path):
    want = {"n_layers": 12, "d_mlp": 3072, "act_fn": "gelu"}
    assert parse_model_info("n_layers=12, d_mlp=3072,act_fn=gelu") == want
    assert parse_model_info('{"n_layers": 12, "d_mlp": "3072", "act_fn": "gelu"}') == want
    f = tmp_path / "info.json"
    f.write_text('{"n_layers": 12, "d_mlp": 3072, "act_fn": "gelu"}')
    assert parse_model_info(str(f)) == want
    with pytest.raises(InputFileError, match="field 'd_mlp': expected an integer"):
        parse_model_info("d_mlp=many")
    with pytest.raises(InputFileError, match="expected key=value"):
        parse_model_info("n_layers")


def test_checker_names_file_and_field():
    c = Checker("x.json")
    doc = {"a": {"b": [1, "2"]}, "n": 1.5, "flag": True}
    with pytest.raises(InputFileError, match=r"field 'a\.b': expected an integer, got a list"):
        c.int(doc, "a.b")
    assert c.int(doc, "absent", required=False) is None
    with pytest.raises(InputFileError, match=r"^x\.json, field 'a\.b\[1\]': expected a number, got a string$"):
        c.floats(doc, "a.b")
    with pytest.raises(InputFileError, match=r"field 'n': expected an integer, got float"):
        c.int(doc, "n")
    with pytest.raises(InputFileError, match=r"field 'flag': expected a number, got a boolean"):
        c.float(doc, "flag")
    with pytest.raises(InputFileError, match=r"field 'top\.missing': missing"):
        c.get({"top": {}}, "missing", "top")
