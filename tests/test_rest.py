"""The DeepDecipher-compatible REST API over a real FalkorDB with a small hand-written graph."""

from __future__ import annotations


import httpx
import pytest
from starlette.applications import Starlette

from neurograph.api.rest import parse_search, routes
from neurograph.domain import ModelInfo, example_key, explanation_key, layer_key, neuron_key, pattern_key

M = "toy"
N_LAYERS, D_MLP = 2, 4


async def _graph(store) -> None:
    """toy: 2 layers x 4 neurons. Every neuron has max/min stats; neuron 0/1 has texts, an
    explanation and an N2G pattern; 1/2 has a pattern too; 0/1 and 1/2 are similar.
    'bare' is a model with nothing but its metadata."""
    await store.write("upsert_models", [ModelInfo(M, N_LAYERS, D_MLP, act_fn="gelu", dataset="kjv").row(),
                                        ModelInfo("bare", 1, 2).row()])
    await store.write("upsert_layers", [{"key": layer_key(M, l), "model": M, "layer": l, "n_neurons": D_MLP}
                                        for l in range(N_LAYERS)] +
                      [{"key": layer_key("bare", 0), "model": "bare", "layer": 0, "n_neurons": 2}])
    await store.write("upsert_neurons", [
        {"key": neuron_key(M, l, i), "model": M, "layer": l, "index": i, "layer_key": layer_key(M, l),
         "props": {"max": 1.0 + l + i / 10, "min": -0.5 * (i + 1)}}
        for l in range(N_LAYERS) for i in range(D_MLP)] + [
        {"key": neuron_key("bare", 0, 0), "model": "bare", "layer": 0, "index": 0,
         "layer_key": layer_key("bare", 0), "props": {}}])
    texts = [["In", " the", " beginning"], ["And", " God", " said"], ["Let", " there", " be"]]
    await store.write("upsert_examples", [{"key": example_key(M, d), "model": M, "tokens": t, "data_index": d,
                                           "source": "kjv"} for d, t in enumerate(texts)])
    # ranks deliberately written out of order: the page must come back ordered by rank
    acts = {0: [0.1, 2.0, -0.2], 1: [0.0, 0.3, 1.5], 2: [-3.0, 0.2, 0.4]}
    await store.write("upsert_activations", [
        {"neuron": neuron_key(M, 0, 1), "example": example_key(M, d), "kind": "max", "rank": r,
         "activations": acts[d], "max_activation": max(acts[d]), "min_activation": min(acts[d]),
         "pivot": acts[d].index(max(acts[d]))}
        for r, d in ((2, 2), (0, 0), (1, 1))])
    await store.write("upsert_explanations", [
        {"key": explanation_key(M, 0, 1, src, text), "neuron": neuron_key(M, 0, 1), "source": src,
         "text": text, "score": score, "scores": {}}
        for src, text, score in (("oai", "the word 'the'", 0.4), ("llm", "creation verbs", 0.7))])
    await store.write("upsert_tokens", [{"key": f"{M}/t{i}", "model": M, "id": i, "text": t}
                                        for i, t in enumerate([" the", "In", " God"])])
    pnodes = []
    for (l, i), nodes in {(0, 1): [(" the", "activating", 1.0, True), ("In", "important", None, False)],
                          (1, 2): [(" the", "activating", 0.8, True), (" God", "important", None, False)]}.items():
        for p, (tok, role, act, end) in enumerate(nodes):
            pnodes.append({"key": pattern_key(M, l, i, p), "neuron": neuron_key(M, l, i), "token": tok,
                           "token_key": None, "depth": p, "role": role, "activation": act, "is_end": end})
    await store.write("upsert_pattern_nodes", pnodes)
    await store.write("upsert_pattern_edges", [{"src": pattern_key(M, 0, 1, 0), "dst": pattern_key(M, 0, 1, 1)},
                                               {"src": pattern_key(M, 1, 2, 0), "dst": pattern_key(M, 1, 2, 1)}])
    await store.write("upsert_similar", [{"src": neuron_key(M, 0, 1), "dst": neuron_key(M, 1, 2), "weight": 0.9}])


@pytest.fixture
async def client(store):
    await _graph(store)
    app = Starlette(routes=routes)
    app.state.store = store
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as c:
        yield c


async def test_index_lists_models_with_metadata(client):
    r = await client.get("/api")
    assert r.status_code == 200
    models = {m["name"]: m for m in r.json()["models"]}
    assert set(models) == {M, "bare"}
    toy = models[M]
    assert (toy["num_layers"], toy["layer_size"], toy["num_total_neurons"]) == (2, 4, 8)
    assert toy["activation_function"] == "gelu" and toy["dataset"] == "kjv"
    assert toy["available_services"] == ["metadata", "neuroscope", "neuron_explainer",
                                         "neuron2graph", "neuron2graph-search"]
    assert models["bare"]["available_services"] == ["metadata"]


async def test_metadata_service_is_the_bare_metadata(client):
    r = await client.get(f"/api/{M}/metadata/1/3")
    assert r.status_code == 200
    assert r.json()["name"] == M and r.json()["num_layers"] == 2


async def test_neuroscope_neuron_page_follows_rank_and_neuroscope_shape(client):
    r = await client.get(f"/api/{M}/neuroscope/0/1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["metadata"]["name"] == M
    page = body["data"]
    assert page["neuron_index"] == {"layer": 0, "neuron": 1}
    texts = page["texts"]
    assert [t["data_index"] for t in texts] == [0, 1, 2]  # rank order, not write order
    assert texts[0]["tokens"] == ["In", " the", " beginning"]
    assert texts[0]["activations"] == [0.1, 2.0, -0.2]
    assert texts[0]["max_activation"] == 2.0 and texts[0]["max_activating_token_index"] == 1
    assert texts[2]["min_activation"] == -3.0
    # one colour scale for the page: ± the largest |activation| over all texts
    assert all(t["max_range"] == 3.0 and t["min_range"] == -3.0 for t in texts)
    r = await client.get(f"/api/{M}/neuroscope/0/1?limit=1")
    assert len(r.json()["data"]["texts"]) == 1


async def test_neuroscope_model_and_layer_pages_rank_by_range(client):
    layer = (await client.get(f"/api/{M}/neuroscope/1")).json()["data"]
    assert layer["num_neurons"] == D_MLP
    ranges = [rng for _, rng in layer["important_neurons"]]
    assert len(ranges) == D_MLP and ranges == sorted(ranges, reverse=True)
    # layer 1, neuron 3: max 2.3, min -2.0 -> range 2.3, the largest in the layer
    assert layer["important_neurons"][0][0] == {"layer": 1, "neuron": 3}
    assert layer["important_neurons"][0][1] == pytest.approx(2.3)
    model = (await client.get(f"/api/{M}/neuroscope?limit=3")).json()["data"]
    assert [n for n, _ in model["important_neurons"]] == [{"layer": 1, "neuron": i} for i in (3, 2, 1)]


async def test_neuron_explainer_picks_the_best_score(client):
    r = await client.get(f"/api/{M}/neuron_explainer/0/1")
    assert r.json()["data"] == {"explanation": "creation verbs", "score": 0.7}
    # A neuron without an explanation: 200 with what exists (as DeepDecipher), not a 404.
    r = await client.get(f"/api/{M}/neuron_explainer/0/2")
    assert r.status_code == 200 and "data" not in r.json()
    assert r.json()["missing_data_objects"] == r.json()["missing_data_types"] == ["neuron_explainer"]


async def test_neuron2graph_page_has_graph_dot_and_similar(client):
    r = await client.get(f"/api/{M}/neuron2graph/0/1")
    assert r.status_code == 200, r.text
    page = r.json()["data"]
    nodes = page["graph"]["graph"]
    assert [n["token"] for n in nodes] == [" the", "In"]
    assert nodes[0]["required"] == [1] and page["graph"]["subgraph_indices"] == [0]
    assert page["graphviz"].startswith("digraph") and '"In"' in page["graphviz"]
    assert page["similar"] == [{"layer": 1, "neuron": 2, "similarity": 0.9}]
    # similarity is symmetric: the other end sees it too
    other = (await client.get(f"/api/{M}/neuron2graph/1/2")).json()["data"]
    assert other["similar"] == [{"layer": 0, "neuron": 1, "similarity": 0.9}]


async def test_neuron2graph_search_intersects_terms(client):
    async def search(q: str) -> list:
        r = await client.get(f"/api/{M}/neuron2graph-search", params={"query": q})
        assert r.status_code == 200, r.text
        return r.json()["data"]

    assert await search("activating: the") == [{"layer": 0, "neuron": 1}, {"layer": 1, "neuron": 2}]
    assert await search("activating: the,important: God") == [{"layer": 1, "neuron": 2}]
    assert await search("any:In") == [{"layer": 0, "neuron": 1}]
    assert await search("important: the") == []
    assert await search("activating:THE") == await search("activating: the")  # case-insensitive
    r = await client.get(f"/api/{M}/neuron2graph-search", params={"query": "nonsense"})
    assert r.status_code == 400 and "activating:TOKEN" in r.json()["error"]


async def test_all_route_gathers_every_service(client):
    r = await client.get(f"/api/{M}/all/0/2")
    assert r.status_code == 200
    body = r.json()
    assert body["metadata"]["data"]["name"] == M
    assert body["neuron_explainer"] == {"missing_data_objects": ["neuron_explainer"],
                                        "missing_data_types": ["neuron_explainer"],
                                        "message": "No explanation for neuron l0n2 of 'toy'."}
    assert "neuron2graph-search" in body and "error" in body["neuron2graph-search"]
    body = (await client.get(f"/api/{M}/all/0/1")).json()
    assert body["neuroscope"]["data"]["neuron_index"] == {"layer": 0, "neuron": 1}
    assert body["neuron2graph"]["data"]["similar"][0]["similarity"] == 0.9
    layer = (await client.get(f"/api/{M}/all/1")).json()
    assert layer["neuroscope"]["data"]["num_neurons"] == D_MLP


async def test_neuronav_route_gives_one_document(client, store):
    await store.run("MATCH (n:Neuron {key: $k}) SET n.n2g_firing_f1 = 0.56", {"k": neuron_key(M, 0, 1)}, write=True)
    r = await client.get(f"/api/{M}/0/1")  # NeuroNav's own example is /api/GPT-2-XL/5/2332
    assert r.status_code == 200, r.text
    doc = r.json()
    assert list(doc) == ["model", "available", "layer", "neuron", "metadata", "neuroscope", "neuron2graph",
                         "explanation"]
    assert (doc["model"], doc["layer"], doc["neuron"]) == (M, 0, 1)
    assert doc["available"] == ["Max Activating Dataset Example", "Neuron Graph", "Explanation"]
    assert doc["metadata"]["name"] == M and doc["metadata"]["num_layers"] == N_LAYERS
    # Each block is the same as its service's neuron page.
    assert doc["neuroscope"] == (await client.get(f"/api/{M}/neuroscope/0/1")).json()["data"]
    n2g = (await client.get(f"/api/{M}/neuron2graph/0/1")).json()["data"]
    assert doc["neuron2graph"] == {"explanation-score": 0.56, **n2g}
    assert doc["explanation"] == {"explanation-score": 0.7, "explanation": "creation verbs", "score": 0.7,
                                  "source": "llm"}
    # A neuron with less data: what exists, null for the rest, still a 200.
    doc = (await client.get(f"/api/{M}/1/2")).json()
    assert doc["available"] == ["Neuron Graph"] and doc["neuroscope"] is None and doc["explanation"] is None
    assert doc["neuron2graph"]["explanation-score"] is None
    # Unknown model / neuron out of range: clear JSON 404s.
    assert (await client.get("/api/nope/0/1")).status_code == 404
    r = await client.get(f"/api/{M}/0/99")
    assert r.status_code == 404 and "Neuron 99 not found" in r.json()["error"]


@pytest.mark.parametrize("path, status, needle", [
    ("/api/nope/neuroscope/0/0", 404, "Model 'nope' not found"),
    ("/api/bad name/neuroscope/0/0", 404, "not found"),
    (f"/api/{M}/nosuch/0/0", 404, "Service 'nosuch' not found"),
    (f"/api/{M}/neuroscope/9/0", 404, "Layer 9 not found"),
    (f"/api/{M}/neuroscope/0/99", 404, "Neuron 99 not found"),
    (f"/api/{M}/neuroscope/x/0", 400, "layer index"),
    (f"/api/{M}/neuroscope/0/-1", 400, "neuron index"),
    (f"/api/{M}/neuroscope/0/99999999999999999999", 400, "neuron index"),
    (f"/api/{M}/neuroscope/\u00b2/0", 400, "layer index"),
    (f"/api/{M}/neuroscope?limit=0", 400, "limit"),
    (f"/api/{M}/neuroscope?limit=\u00b3", 400, "limit"),
    (f"/api/{M}/neuron_explainer", 404, "no model page"),
    ("/api/bare/neuroscope/0/1", 404, "Neuron l0n1 of model 'bare' is not in the graph"),
    (f"/api/{M}/all/0/9", 404, "Neuron 9 not found"),
    (f"/api/{M}/neuroscope/0/1/", 404, "No route"),
    (f"/api/{M}/neuroscope/0/1/extra", 404, "No route"),
])
async def test_errors_are_clear_json(client, path, status, needle):
    r = await client.get(path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert needle in body["error"] and set(body) == {"error"}
    assert "Traceback" not in r.text


async def test_all_on_a_model_without_data(client):
    body = (await client.get("/api/bare/all/0/0")).json()
    assert body["metadata"]["data"]["name"] == "bare"
    for name in ("neuroscope", "neuron_explainer", "neuron2graph", "neuron2graph-search"):
        assert body[name]["missing_data_objects"] == [name]
    assert (await client.get("/api/bare/all/0/1")).status_code == 404  # no such neuron in the graph


async def test_missing_data_is_a_200_with_what_exists(client):
    """As DeepDecipher: a neuron (or model) that exists but lacks a service's data answers 200,
    naming what is missing and what is available there; the metadata comes with it."""
    r = await client.get("/api/bare/neuron2graph/0/0")  # the model has no N2G data at all
    assert r.status_code == 200
    body = r.json()
    assert body["missing_data_objects"] == ["neuron2graph"] and body["available"] == ["metadata"]
    assert body["metadata"]["name"] == "bare" and "No neuron2graph data" in body["message"]
    # toy/1/2 has an N2G graph but no texts and no explanation: its neuroscope page lists that.
    r = await client.get(f"/api/{M}/neuroscope/1/2")
    assert r.status_code == 200 and "data" not in r.json()
    assert r.json()["missing_data_objects"] == ["neuroscope"]
    assert r.json()["available"] == ["metadata", "neuron2graph"]
    # the same neuron's N2G page has its data
    assert "graph" in (await client.get(f"/api/{M}/neuron2graph/1/2")).json()["data"]
    # model and layer pages of a model without the data: the model's services are what is available
    r = await client.get("/api/bare/neuroscope/0")
    assert r.status_code == 200 and r.json()["missing_data_objects"] == ["neuroscope"]
    assert r.json()["available"] == ["metadata"]
    # toy/0/1 has everything: a page, no missing list
    r = await client.get(f"/api/{M}/neuroscope/0/1")
    assert r.status_code == 200 and "missing_data_objects" not in r.json() and r.json()["data"]["texts"]


async def test_openapi_describes_every_route(client):
    doc = (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    paths = {r.path for r in routes if r.path.startswith("/api/{") and ":path}" not in r.path}  # not the 404 catch-all
    assert paths <= set(doc["paths"])
    assert "/api/{model}/all/{layer}/{neuron}" in doc["paths"]
    # The bounds the server enforces are declared: 9 digits at most.
    layer = doc["paths"]["/api/{model}/{service}/{layer}"]["get"]["parameters"][2]["schema"]
    assert layer == {"type": "integer", "minimum": 0, "maximum": 999_999_999}
    # Missing data is a documented 200; 404 is for unknown models, services, layers and neurons.
    responses = doc["paths"]["/api/{model}/{service}/{layer}/{neuron}"]["get"]["responses"]
    assert {"$ref": "#/components/schemas/Missing"} in responses["200"]["content"]["application/json"]["schema"]["oneOf"]
    assert "Unknown" in responses["404"]["description"]
    assert set(doc["components"]["schemas"]["Missing"]["required"]) == {"missing_data_objects", "available"}


async def test_store_failure_is_a_json_503_not_a_traceback(store):
    app = Starlette(routes=routes)  # no store attached at all
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as c:
        r = await c.get("/api")
    assert r.status_code == 503 and "store" in r.json()["error"]


async def test_store_outage_hides_the_store_address(store, monkeypatch):
    from neurograph.errors import StoreUnavailable

    async def down(*args, **kwargs):
        raise StoreUnavailable("FalkorDB is not reachable: Error 2 connecting to unix socket: /home/someone/neurograph/falkordb.sock")

    app = Starlette(routes=routes)
    app.state.store = store
    monkeypatch.setattr(store, "query", down)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as c:
        r = await c.get(f"/api/{M}/all/0/1")
    assert r.status_code == 503 and "not reachable" in r.json()["error"] and ".sock" not in r.text


def test_parse_search_keeps_token_spaces():
    assert parse_search("activating: the,any:cat") == [("activating", " the"), ("any", "cat")]


async def test_mounted_in_the_whole_app(store, settings):
    """The app the GraphQL module builds serves these routes beside /graphql."""
    from neurograph.api.app import create_app

    await _graph(store)
    app = create_app(settings, store=store, web_dir=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as c:
        r = await c.get(f"/api/{M}/neuron_explainer/0/1")
        assert r.status_code == 200 and r.json()["data"]["score"] == 0.7
        assert (await c.get("/api/openapi.json")).json()["paths"]
