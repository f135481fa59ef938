"""Import OpenAI automated-interpretability neuron data (GPT-2 neuron viewer files).

Local layout (the tree OpenAI publishes under
``https://openaipublic.blob.core.windows.net/neuron-explainer/data/``; any part may be absent)::

    PATH/
      collated-activations/{layer}/{neuron}.json          NeuronRecord
      explanations/{layer}/{neuron}.jsonl                 NeuronSimulationResults (first line)
      related-neurons/weight-based/{layer}/{neuron}.json  {c_fc: {...}, c_proj: {...}}
      related-tokens/activation-based/{layer}/{neuron}.json  {tokens, average_activations}
      related-tokens/weight-based/{layer}/{neuron}.json   {input_positive: {tokens, strengths}, ...}

PATH may also be one such file (its kind is recognised from its fields; the neuron comes
from the record, a ``.../{layer}/{neuron}.json[l]`` path or ``layer=``/``neuron=``), or a
base URL with ``neurons=[(l, n), ...]``: each neuron's five files are mirrored into the
on-disk cache (:mod:`loaders.fetch`) and imported from there.

What lands in the graph (Model ``source`` = "openai"; n_layers/d_mlp inferred, or ``model_info``):

* ``NeuronRecord``: neuron props ``mean``, ``var``, ``skew``, ``kurt``, ``max_activation``,
  ``quantile_boundaries``; every record is an ``Example`` keyed by a hash of its tokens
  (``domain.example_key(model, tokens=...)``, so a record seen by several neurons is one
  node) with ``ACTIVATES_ON {kind: "max"}`` for most_positive_activation_records and
  ``{kind: "random"}`` for random_sample then random_sample_by_quantile (``quantile`` = the
  quantile's index, ranks continue across them), ``pivot`` = arg max.
* ``NeuronSimulationResults``: one ``Explanation {source: "openai", text, score =
  ev_correlation_score, rsquared_score, absolute_dev_explained_score, rank}`` per scored
  explanation.
* related neurons: ``COMPOSES {kind: "virtual"}``: each ``c_fc`` neuron → this neuron (it
  feeds this neuron's input), this neuron → each ``c_proj`` neuron (it reads this one's
  output); ``rank`` 0, 1, ... for top_positive, -1, -2, ... for top_negative.
* related tokens: neuron list props ``activation_tokens`` / ``activation_token_values`` and
  ``{input,output}_{positive,negative}_tokens`` / ``..._strengths``. Token ids are not in
  these files: with ``vocab=`` (a JSON list id→text or object text→id) ``TOKEN_EFFECT``
  edges (kinds activation, input, output) are drawn to ``Token {id, text}`` nodes too.

    summary = await import_openai(store, "oai-data/", model="gpt2-xl",
                                  model_info={"n_layers": 48, "d_mlp": 6400})
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from neurograph.domain import example_key, explanation_key
from neurograph.errors import InputFileError

from .importing import (
    Checker,
    ImportModel,
    Plan,
    finite,
    layer_neuron_files,
    parse_model_info,
    read_json,
    read_jsonl,
    run_import,
)
from .registry import importer

KINDS = {
    "record": "collated-activations",
    "explanations": "explanations",
    "related_neurons": "related-neurons/weight-based",
    "tokens_activation": "related-tokens/activation-based",
    "tokens_weight": "related-tokens/weight-based",
}
SUFFIX = {"explanations": ".jsonl"}
_NEURON = re.compile(r"^(\d+)_(\d+)$")
_PATH_LN = re.compile(r"(?:^|/)(\d+)/(\d+)\.jsonl?$")


def _neuron_id(c: Checker, doc: dict, layer: int | None, neuron: int | None) -> tuple[int, int]:
    nid = c.obj(doc, "neuron_id", required=layer is None)
    if nid is not None:
        l, n = c.int(nid, "layer_index", "neuron_id"), c.int(nid, "neuron_index", "neuron_id")
        if layer is not None and (l, n) != (layer, neuron):
            raise c.fail(f"record is neuron {l}/{n} but its path says {layer}/{neuron}", "neuron_id")
        return l, n
    return layer, neuron


def _records(plan: Plan, c: Checker, nk: str, records: list, where: str, kind: str, start: int,
             quantile: int | None) -> int:
    for i, rec in enumerate(records):
        w = f"{where}[{i}]"
        if not isinstance(rec, dict):
            raise c.fail("expected an activation record {tokens, activations}", w)
        tokens = c.strs(rec, "tokens", w)
        acts = c.floats(rec, "activations", w)
        c.same_length(tokens, acts, "tokens", "activations", w)
        ex = plan.example(example_key(plan.model, tokens=tokens), tokens, None, "openai")
        top = max(range(len(acts)), key=acts.__getitem__) if acts else None
        plan.add("upsert_imported_activations", {
            "neuron": nk, "example": ex, "kind": kind, "rank": start + i, "activations": acts,
            "max_activation": max(acts) if acts else None, "min_activation": min(acts) if acts else None,
            "pivot": top, "source": "openai", "quantile": quantile})
    return start + len(records)


def add_record(plan: Plan, c: Checker, doc: Any, layer: int | None, neuron: int | None) -> None:
    if not isinstance(doc, dict):
        raise c.fail("expected a NeuronRecord object", "neuron_id")
    layer, neuron = _neuron_id(c, doc, layer, neuron)
    nk = plan.neuron(layer, neuron)
    top = c.list(doc, "most_positive_activation_records")
    _records(plan, c, nk, top, "most_positive_activation_records", "max", 0, None)
    rank = _records(plan, c, nk, c.list(doc, "random_sample", required=False) or [], "random_sample",
                    "random", 0, None)
    for q, group in enumerate(c.list(doc, "random_sample_by_quantile", required=False) or []):
        if not isinstance(group, list):
            raise c.fail("expected a list of activation records", f"random_sample_by_quantile[{q}]")
        rank = _records(plan, c, nk, group, f"random_sample_by_quantile[{q}]", "random", rank, q)
    maxes = [max(r["activations"]) for r in top if r["activations"]]
    plan.neuron(layer, neuron,
                mean=finite(c.float(doc, "mean", required=False)),
                var=finite(c.float(doc, "variance", required=False)),
                skew=finite(c.float(doc, "skewness", required=False)),
                kurt=finite(c.float(doc, "kurtosis", required=False)),
                max_activation=max(maxes) if maxes else None,
                quantile_boundaries=c.floats(doc, "quantile_boundaries", required=False))


def add_explanations(plan: Plan, c: Checker, doc: Any, layer: int | None, neuron: int | None) -> None:
    if not isinstance(doc, dict):
        raise c.fail("expected a NeuronSimulationResults object", "scored_explanations")
    layer, neuron = _neuron_id(c, doc, layer, neuron)
    nk = plan.neuron(layer, neuron)
    for i, se in enumerate(c.list(doc, "scored_explanations")):
        w = f"scored_explanations[{i}]"
        text = c.str(se, "explanation", w)
        sim = c.obj(se, "scored_simulation", w)
        ws = f"{w}.scored_simulation"
        scores = {k: finite(c.float(sim, k, ws, required=False))
                  for k in ("ev_correlation_score", "rsquared_score", "absolute_dev_explained_score")}
        seqs = c.list(sim, "scored_sequence_simulations", ws, required=False)
        props = {k: v for k, v in scores.items() if v is not None}
        props["rank"] = i
        if seqs is not None:
            props["n_sequences"] = len(seqs)
        plan.add("upsert_explanations", {
            "key": explanation_key(plan.model, layer, neuron, "openai", text), "neuron": nk,
            "source": "openai", "text": text, "score": scores["ev_correlation_score"], "scores": props})


def _neuron_ref(c: Checker, s: Any, where: str) -> tuple[int, int]:
    m = _NEURON.match(s) if isinstance(s, str) else None
    if not m:
        raise c.fail(f"expected 'layer_neuron' like '3_17', got {s!r}", where)
    return int(m.group(1)), int(m.group(2))


def add_related_neurons(plan: Plan, c: Checker, doc: Any, layer: int, neuron: int) -> None:
    if not isinstance(doc, dict) or not ({"c_fc", "c_proj"} & set(doc)):
        raise c.fail("expected related neurons {c_fc: {...}, c_proj: {...}}", "c_fc")
    nk = plan.neuron(layer, neuron)
    for part in ("c_fc", "c_proj"):
        block = c.obj(doc, part, required=False)
        if block is None:
            continue
        for sign in ("positive", "negative"):
            names = c.list(block, f"top_{sign}_neurons", part, required=False)
            if names is None:
                continue
            weights = c.floats(block, f"top_{sign}_weights", part)
            c.same_length(names, weights, f"top_{sign}_neurons", f"top_{sign}_weights", part)
            for i, (name, weight) in enumerate(zip(names, weights)):
                ol, on = _neuron_ref(c, name, f"{part}.top_{sign}_neurons[{i}]")
                other = plan.neuron(ol, on)
                src, dst = (other, nk) if part == "c_fc" else (nk, other)
                plan.add("upsert_composes", {"src": src, "dst": dst, "kind": "virtual", "weight": weight,
                                             "rank": i if sign == "positive" else -(i + 1)})


def _token_edges(plan: Plan, nk: str, tokens: list[str], values: list[float], kind: str, negative: bool,
                 vocab: dict[str, int] | None) -> None:
    if vocab is None:
        return
    for i, (tok, val) in enumerate(zip(tokens, values)):
        tid = vocab.get(tok)
        if tid is None:
            continue
        tk = plan.token(tid, tok)
        plan.add("upsert_token_effects", {"neuron": nk, "token": tk, "kind": kind, "weight": val,
                                          "rank": -(i + 1) if negative else i, "count": None})


def add_tokens_activation(plan: Plan, c: Checker, doc: Any, layer: int, neuron: int,
                          vocab: dict[str, int] | None = None) -> None:
    if not isinstance(doc, dict):
        raise c.fail("expected {tokens, average_activations}", "tokens")
    tokens = c.strs(doc, "tokens")
    values = c.floats(doc, "average_activations")
    c.same_length(tokens, values, "tokens", "average_activations")
    nk = plan.neuron(layer, neuron, activation_tokens=tokens, activation_token_values=values)
    _token_edges(plan, nk, tokens, values, "activation", False, vocab)


def add_tokens_weight(plan: Plan, c: Checker, doc: Any, layer: int, neuron: int,
                      vocab: dict[str, int] | None = None) -> None:
    parts = ("input_positive", "input_negative", "output_positive", "output_negative")
    if not isinstance(doc, dict) or not (set(parts) & set(doc)):
        raise c.fail("expected {input_positive: {tokens, strengths}, ...}", "input_positive")
    nk = plan.neuron(layer, neuron)
    for part in parts:
        block = c.obj(doc, part, required=False)
        if block is None:
            continue
        tokens = c.strs(block, "tokens", part)
        values = c.floats(block, "strengths", part)
        c.same_length(tokens, values, "tokens", "strengths", part)
        plan.neuron(layer, neuron, **{f"{part}_tokens": tokens, f"{part}_strengths": values})
        _token_edges(plan, nk, tokens, values, part.split("_")[0], part.endswith("negative"), vocab)


def detect_kind(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return None
    if "scored_explanations" in doc:
        return "explanations"
    if "most_positive_activation_records" in doc or "random_sample" in doc:
        return "record"
    if "c_fc" in doc or "c_proj" in doc:
        return "related_neurons"
    if "average_activations" in doc:
        return "tokens_activation"
    if any(k in doc for k in ("input_positive", "input_negative", "output_positive", "output_negative")):
        return "tokens_weight"
    return None


def _load(path: Path, kind: str) -> Any:
    return read_jsonl(path)[0] if kind == "explanations" else read_json(path)


def _add(plan: Plan, c: Checker, kind: str, doc: Any, layer, neuron, vocab) -> None:
    if kind in ("record", "explanations"):
        (add_record if kind == "record" else add_explanations)(plan, c, doc, layer, neuron)
        return
    if layer is None or neuron is None:
        raise c.fail("this file does not name its neuron: give layer= and neuron= or a "
                     "'{layer}/{neuron}.json' path", "layer")
    if kind == "related_neurons":
        add_related_neurons(plan, c, doc, layer, neuron)
    elif kind == "tokens_activation":
        add_tokens_activation(plan, c, doc, layer, neuron, vocab)
    else:
        add_tokens_weight(plan, c, doc, layer, neuron, vocab)


def load_vocab(value: Any) -> dict[str, int] | None:
    """``vocab=``: a dict text→id, a list id→text, or a JSON file holding either."""
    if value is None:
        return None
    data = value if isinstance(value, (dict, list)) else read_json(value)
    c = Checker(value if not isinstance(value, (dict, list)) else "vocab")
    if isinstance(data, list):
        return {t: i for i, t in enumerate(data) if isinstance(t, str)}
    if isinstance(data, dict):
        return {t: c.as_int(i, f"vocab[{t!r}]") for t, i in data.items()}
    raise c.fail("expected a JSON list (id → text) or object (text → id)", "vocab")


def plan_units(path: Path, *, model: str | None, model_info: Any = None, vocab: Any = None,
               **options: Any) -> tuple[ImportModel, Callable]:
    explicit = parse_model_info(model_info)
    tokens = load_vocab(vocab)
    if path.is_dir():
        files = [(kind, l, n, f) for kind, sub in KINDS.items()
                 for l, n, f in layer_neuron_files(path / sub, SUFFIX.get(kind, ".json"))]
        if not files:
            raise InputFileError(path, "no neuron files found: expected " +
                                 ", ".join(f"{s}/{{layer}}/{{neuron}}.json" for s in KINDS.values()))
        im = ImportModel(model or path.name, "openai")
        im.update(explicit)

        def units():
            for kind, l, n, f in files:
                yield str(f), _file_unit(im.name, kind, f, l, n, tokens)
        return im, units
    if not path.is_file():
        raise InputFileError(path, "no such file or folder")
    if not model:
        raise InputFileError(path, "which model is this? give --model", "model")
    kind = "explanations" if path.suffix == ".jsonl" else detect_kind(read_json(path))
    if kind is None:
        raise InputFileError(path, "not an automated-interpretability file: expected a NeuronRecord, "
                             "NeuronSimulationResults, related neurons or related tokens", "neuron_id")
    im = ImportModel(model, "openai")
    im.update(explicit)
    if options.get("layer") is not None and options.get("neuron") is not None:
        layer, neuron = int(options["layer"]), int(options["neuron"])
    else:
        m = _PATH_LN.search(str(options.get("url") or path).replace("\\", "/"))
        layer, neuron = (int(m.group(1)), int(m.group(2))) if m else (None, None)

    def units():
        yield str(path), _file_unit(im.name, kind, path, layer, neuron, tokens)
    return im, units


def _file_unit(model: str, kind: str, f: Path, layer, neuron, vocab):
    def parse() -> Plan:
        c = Checker(f)
        plan = Plan(model)
        _add(plan, c, kind, _load(f, kind), layer, neuron, vocab)
        return plan
    return parse


@importer("openai")
async def import_openai(store: Any, path: str | Path, *, model: str | None = None, model_info: Any = None,
                        progress: bool = True, **options: Any) -> dict[str, Any]:
    """Import an automated-interpretability tree, one of its files, or a base URL + ``neurons``.

        await import_openai(store, "oai/", model="gpt2-xl")
        await import_openai(store, "https://openaipublic.blob.core.windows.net/neuron-explainer/data",
                            model="gpt2-xl", neurons=[(0, 1), (5, 131)])
    """
    text = str(path)
    if text.startswith(("http://", "https://")):
        from .fetch import Fetcher

        if not model:
            raise InputFileError(text, "which model is this? give --model", "model")

        async with Fetcher(options.pop("cache_dir", None)) as fetcher:
            neurons = options.pop("neurons", None)
            if neurons is None:
                suffix = ".jsonl" if text.endswith(".jsonl") else ".json"
                path = await fetcher.get_file(text, suffix=suffix)
                options["url"] = text
            else:
                rel = [f"{sub}/{l}/{n}{SUFFIX.get(kind, '.json')}" for l, n in neurons
                       for kind, sub in KINDS.items()]
                path = await fetcher.mirror(text, rel)
    im, units = plan_units(Path(path), model=model, model_info=model_info, **options)
    return await run_import(store, im, units, progress=progress)

