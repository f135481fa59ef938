"""A DeepDecipher-compatible REST API over the graph store, for existing clients.

Routes (``routes``, mounted by the app; handlers read ``request.app.state.store``)::

    GET /api                                         {"models": [metadata, ...]}
    GET /api/{model}/{service}[/{layer}[/{neuron}]]  {"data": page, "metadata": metadata}
    GET /api/{model}/all[/{layer}[/{neuron}]]        {service: {"data": page} | {"missing_data_objects": [...]} | {"error": msg}}
    GET /api/{model}/{layer}/{neuron}                NeuroNav's neuron document: {model, available, layer, neuron,
                                                     metadata, neuroscope, neuron2graph, explanation}
    GET /api/openapi.json  (also /doc/openapi.json)  the OpenAPI 3 description of these routes

Services: ``metadata``, ``neuroscope``, ``neuron_explainer``, ``neuron2graph``,
``neuron2graph-search`` (``?query=activating:tok,important:tok2`` or ``any:tok``; comma = AND).
As in DeepDecipher, the ``metadata`` service answers with the bare metadata object.

Missing data is not an error, as in DeepDecipher: a model or neuron that exists but lacks the
service's data answers 200 with what exists, ``{"missing_data_objects": [service], "available":
[services with data here], "message": ..., "metadata": ...}`` (``missing_data_types``, the name
this API used before, is kept beside it). Errors are JSON, never a traceback: unknown model,
layer, neuron or service -> 404 ``{"error": ...}``; a malformed index or query -> 400
``{"error": ...}``; the store is down -> 503.

    from starlette.applications import Starlette
    from neurograph.api.rest import routes

    app = Starlette(routes=routes)
    app.state.store = store            # a neurograph.store.Store
    # GET /api/smollm2-135m/neuroscope/3/17
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from ..domain import layer_key, neuron_key
from ..errors import InvalidKey, NeuroGraphError, StoreUnavailable, without_addresses
from ..search import search_tokens
from ..store.base import Store

log = logging.getLogger(__name__)

SERVICES: tuple[str, ...] = ("metadata", "neuroscope", "neuron_explainer", "neuron2graph", "neuron2graph-search")

# Bounds on what one request can ask for (an oversized request gets a 400, not a slow answer).
MAX_LIMIT = 10_000
DEFAULT_MODEL_IMPORTANT = 100    # model page: the N neurons with the largest activation range
DEFAULT_LAYER_IMPORTANT = 10_000  # layer page: DeepDecipher lists every neuron of the layer
DEFAULT_TEXTS = 20               # Neuroscope shows 20 texts per neuron
DEFAULT_SIMILAR = 50
MAX_QUERY_TERMS = 16
MAX_INDEX = 999_999_999  # layer and neuron indices: at most 9 digits (declared in the OpenAPI document)


class Problem(Exception):
    """An HTTP error with a JSON body: ``raise Problem(404, error="Model 'x' not found.")``."""

    def __init__(self, status: int, **body: Any) -> None:
        super().__init__(body.get("error") or body)
        self.status = status
        self.body = body


class Missing(Problem):
    """The service's data is not loaded for this model or unit: a 200 naming what is missing
    (DeepDecipher's ``missing_data_objects``), not an error."""

    def __init__(self, *types: str, message: str | None = None) -> None:
        body: dict[str, Any] = {"missing_data_objects": list(types), "missing_data_types": list(types)}
        if message:
            body["message"] = message
        super().__init__(200, **body)


def _json(body: Any, status: int = 200) -> JSONResponse:
    # CORS is the app's policy (read-only '*' as DeepDecipher's, or NEUROGRAPH_CORS_ORIGINS), not ours
    return JSONResponse(body, status_code=status)


def _index(raw: str | None, what: str) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(MAX_INDEX)):
        raise Problem(400, error=f"{what} index must be a non-negative integer, got {raw!r}")
    return int(raw)


def _limit(request: Request, default: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise Problem(400, error=f"limit must be an integer from 1 to {MAX_LIMIT}, got {raw!r}")
    return int(raw)


# --- model metadata ----------------------------------------------------------------------

async def available_services(store: Store, model: str) -> list[str]:
    """The services whose data is loaded for a model (metadata always is)."""
    out, prefix = ["metadata"], f"{model}/"
    if await store.query("rest_model_has_neuroscope", prefix=prefix):
        out.append("neuroscope")
    if await store.query("rest_model_has_explanations", prefix=prefix):
        out.append("neuron_explainer")
    if await store.query("rest_model_has_n2g", prefix=prefix):
        out += ["neuron2graph", "neuron2graph-search"]
    return out


def _metadata(row: dict[str, Any], services: list[str]) -> dict[str, Any]:
    n_layers, d_mlp = row.get("n_layers"), row.get("d_mlp")
    return {
        "name": row["key"],  # the model's key is its name, the one in every URL
        "num_layers": n_layers,
        "layer_size": d_mlp,
        "activation_function": row.get("act_fn"),
        "num_total_neurons": n_layers * d_mlp if n_layers is not None and d_mlp is not None else None,
        # DeepDecipher records a parameter count; the graph has no weights to count.
        "num_total_parameters": None,
        "dataset": row.get("dataset"),
        "available_services": services,
    }


async def model_metadata(store: Store, model: str) -> dict[str, Any]:
    """DeepDecipher metadata of one model; Problem(404) when it is not in the graph."""
    try:
        rows = await store.query("rest_model", model=model)
    except InvalidKey:
        rows = []
    if not rows:
        raise Problem(404, error=f"Model '{model}' not found.")
    return _metadata(rows[0], await available_services(store, model))


def _check_range(meta: dict[str, Any], layer: int | None, neuron: int | None) -> None:
    name, n_layers, size = meta["name"], meta["num_layers"], meta["layer_size"]
    if layer is not None and n_layers is not None and layer >= n_layers:
        raise Problem(404, error=f"Layer {layer} not found: model '{name}' has {n_layers} layers.")
    if neuron is not None and size is not None and neuron >= size:
        raise Problem(404, error=f"Neuron {neuron} not found: layers of model '{name}' have {size} neurons.")


async def _neuron(store: Store, model: str, layer: int, neuron: int) -> dict[str, Any]:
    rows = await store.query("rest_neuron", key=neuron_key(model, layer, neuron))
    if not rows:
        raise Problem(404, error=f"Neuron l{layer}n{neuron} of model '{model}' is not in the graph.")
    return rows[0]


# --- services ---------------------------------------------------------------------------

Page = Callable[[Store, dict[str, Any], int | None, int | None, Request], Awaitable[Any]]


def _no_page(service: str, level: str) -> Problem:
    return Problem(404, error=f"Service '{service}' has no {level} page.")


async def _metadata_page(store: Store, meta: dict[str, Any], layer: int | None, neuron: int | None,
                         request: Request) -> Any:
    return meta


def _important(rows: list[dict]) -> list[list[Any]]:
    return [[{"layer": r["layer"], "neuron": r["neuron"]}, r["range"]] for r in rows]


async def _neuroscope_page(store: Store, meta: dict[str, Any], layer: int | None, neuron: int | None,
                           request: Request) -> Any:
    model = meta["name"]
    if layer is None:
        rows = await store.query("rest_neuroscope_model", model=model,
                                 limit=_limit(request, DEFAULT_MODEL_IMPORTANT))
        return {"important_neurons": _important(rows)}
    if neuron is None:
        rows = await store.query("rest_neuroscope_layer", key=layer_key(model, layer),
                                 limit=_limit(request, DEFAULT_LAYER_IMPORTANT))
        info = await store.query("rest_layer", key=layer_key(model, layer))
        n = (info[0].get("n_neurons") if info else None) or meta["layer_size"]
        return {"num_neurons": n, "important_neurons": _important(rows)}
    await _neuron(store, model, layer, neuron)
    rows = await store.query("rest_neuroscope_texts", key=neuron_key(model, layer, neuron),
                             limit=_limit(request, DEFAULT_TEXTS))
    if not rows:
        raise Missing("neuroscope", message=f"No max-activating texts for neuron l{layer}n{neuron} of '{model}'.")
    texts = []
    for r in rows:
        acts = [float(a) for a in (r["activations"] or [])]
        mx = r["max_activation"] if r["max_activation"] is not None else max(acts, default=0.0)
        mn = r["min_activation"] if r["min_activation"] is not None else min(acts, default=0.0)
        pivot = r["pivot"] if r["pivot"] is not None else (acts.index(max(acts)) if acts else 0)
        texts.append({"min_activation": mn, "max_activation": mx, "data_index": r["data_index"],
                      "max_activating_token_index": pivot, "tokens": list(r["tokens"] or []),
                      "activations": acts})
    # Neuroscope colours every text on one scale: ± the largest |activation| over the texts.
    rng = max((max(abs(t["max_activation"]), abs(t["min_activation"])) for t in texts), default=0.0)
    for t in texts:
        t["max_range"], t["min_range"] = rng, -rng
    return {"neuron_index": {"layer": layer, "neuron": neuron}, "texts": texts}


async def _explainer_page(store: Store, meta: dict[str, Any], layer: int | None, neuron: int | None,
                          request: Request) -> Any:
    if neuron is None:
        raise _no_page("neuron_explainer", "layer" if layer is not None else "model")
    model = meta["name"]
    await _neuron(store, model, layer, neuron)
    rows = await store.query("rest_best_explanation", key=neuron_key(model, layer, neuron))
    if not rows:
        raise Missing("neuron_explainer", message=f"No explanation for neuron l{layer}n{neuron} of '{model}'.")
    return {"explanation": rows[0]["explanation"], "score": rows[0]["score"]}


def _dot_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def pattern_dot(nodes: list[dict[str, Any]]) -> str:
    """Graphviz DOT of an N2G pattern graph as N2G draws it: activating nodes red, context blue."""
    lines = ["digraph {", "  rankdir=RL;"]
    for i, n in enumerate(nodes):
        color = "#f4a6a6" if n["role"] == "activating" else "#a6c8f4"
        style = ", peripheries=2" if n.get("is_end") else ""
        lines.append(f"  {i} [label={_dot_quote(str(n['token']))}, style=filled, fillcolor={_dot_quote(color)}{style}];")
    for i, n in enumerate(nodes):
        for j in n["required"]:
            lines.append(f"  {i} -> {j};")
    lines.append("}")
    return "\n".join(lines)


async def _n2g_page(store: Store, meta: dict[str, Any], layer: int | None, neuron: int | None,
                    request: Request) -> Any:
    if neuron is None:
        raise _no_page("neuron2graph", "layer" if layer is not None else "model")
    model = meta["name"]
    info = await _neuron(store, model, layer, neuron)
    key = neuron_key(model, layer, neuron)
    rows = await store.query("rest_n2g_pattern", key=key)
    if not rows and not info.get("n2g_dot"):
        raise Missing("neuron2graph", message=f"No N2G graph for neuron l{layer}n{neuron} of '{model}'.")
    pos = {r["key"]: i for i, r in enumerate(rows)}
    nodes = [{"token": r["token"], "required": sorted(pos[k] for k in r["next"] if k in pos),
              "importance": r["importance"] if r["importance"] is not None else r["activation"],
              "activation": r["activation"], "depth": r["depth"], "role": r["role"],
              "is_end": bool(r["is_end"])} for r in rows]
    similar = await store.query("rest_n2g_similar", key=key, limit=_limit(request, DEFAULT_SIMILAR))
    return {
        # Subgraphs are rooted at the activating tokens (N2G's trie roots).
        "graph": {"subgraph_indices": [i for i, n in enumerate(nodes) if n["role"] == "activating"],
                  "graph": nodes},
        "graphviz": info.get("n2g_dot") or pattern_dot(nodes),
        "similar": [{"layer": s["layer"], "neuron": s["neuron"], "similarity": s["similarity"]} for s in similar],
    }


SEARCH_KINDS = ("activating", "important", "any")


def parse_search(query: str | None) -> list[tuple[str, str]]:
    """``'activating:the,any: cat'`` -> ``[('activating', 'the'), ('any', ' cat')]`` (AND of terms).
    The token keeps its spaces: GPT-style tokens often start with one."""
    if not query:
        raise Problem(400, error="neuron2graph-search needs ?query=activating:TOKEN, important:TOKEN "
                                 "or any:TOKEN (comma-separated terms are intersected)")
    terms = []
    for part in query.split(","):
        kind, sep, token = part.partition(":")
        kind = kind.strip().lower()
        if not sep or kind not in SEARCH_KINDS or token == "":
            raise Problem(400, error=f"bad search term {part!r}: use activating:TOKEN, important:TOKEN or any:TOKEN")
        terms.append((kind, token))
    if len(terms) > MAX_QUERY_TERMS:
        raise Problem(400, error=f"at most {MAX_QUERY_TERMS} search terms, got {len(terms)}")
    return terms


SEARCH_PAGE = 1000  # rows per search_tokens call (its own maximum); we page to MAX_LIMIT


async def _search(store: Store, model: str, terms: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """Neurons matching every term, sorted by (layer, neuron), at most MAX_LIMIT of them."""
    groups: dict[str, list[str]] = {"activating": [], "important": [], "any": []}
    for kind, token in terms:
        groups[kind].append(token)
    out: list[tuple[int, int]] = []
    while len(out) < MAX_LIMIT:
        rows = await search_tokens(store, model, activating=groups["activating"], important=groups["important"],
                                   any_=groups["any"], limit=SEARCH_PAGE, offset=len(out))
        out += [(int(r["layer"]), int(r["index"])) for r in rows]
        if len(rows) < SEARCH_PAGE:
            break
    return sorted(out)[:MAX_LIMIT]


async def _n2g_search_page(store: Store, meta: dict[str, Any], layer: int | None, neuron: int | None,
                           request: Request) -> Any:
    if layer is not None:
        raise _no_page("neuron2graph-search", "neuron" if neuron is not None else "layer")
    terms = parse_search(request.query_params.get("query"))
    return [{"layer": l, "neuron": n} for l, n in await _search(store, meta["name"], terms)]


PAGES: dict[str, Page] = {
    "metadata": _metadata_page,
    "neuroscope": _neuroscope_page,
    "neuron_explainer": _explainer_page,
    "neuron2graph": _n2g_page,
    "neuron2graph-search": _n2g_search_page,
}


async def service_value(store: Store, meta: dict[str, Any], service: str, layer: int | None,
                        neuron: int | None, request: Request) -> dict[str, Any]:
    """``{"data": page}``; raises Missing when the model lacks the service's data."""
    if service not in meta["available_services"]:
        raise Missing(service, message=f"No {service} data is loaded for model '{meta['name']}'.")
    return {"data": await PAGES[service](store, meta, layer, neuron, request)}


# --- handlers ---------------------------------------------------------------------------

def _store(request: Request) -> Store:
    store = getattr(request.app.state, "store", None)
    if store is None:
        raise Problem(503, error="no graph store is attached to the app")
    return store


async def _guard(handler: Callable[[Request], Awaitable[Any]], request: Request) -> JSONResponse:
    try:
        return _json(await handler(request))
    except Problem as p:
        return _json(p.body, p.status)
    except StoreUnavailable as e:  # its address (a socket path, host:port) is for the log, not the client
        log.warning("REST %s: %s", request.url.path, e)
        return _json({"error": f"graph store unavailable: {without_addresses(str(e))}"}, 503)
    except InvalidKey as e:
        return _json({"error": str(e)}, 400)
    except NeuroGraphError as e:
        log.warning("REST %s: %s", request.url.path, e)
        return _json({"error": str(e)}, 500)
    except Exception:  # never a traceback to the client; the log keeps it
        log.exception("REST %s failed", request.url.path)
        return _json({"error": "internal error"}, 500)


async def _api_index(request: Request) -> Any:
    store = _store(request)
    models = []
    for row in await store.query("rest_models"):
        models.append(_metadata(row, await available_services(store, row["key"])))
    return {"models": models}


async def _service(request: Request) -> Any:
    store = _store(request)
    p = request.path_params
    layer = _index(p.get("layer"), "layer")
    neuron = _index(p.get("neuron"), "neuron")
    service = p["service"]
    if neuron is None and layer is not None and service.isascii() and service.isdigit():
        # /api/{model}/{layer}/{neuron}: NeuroNav's route (no service is named by digits)
        return await neuronav(store, request, p["model"], _index(service, "layer"), layer)
    if service != "all" and service not in PAGES:
        raise Problem(404, error=f"Service '{service}' not found. Services: {', '.join(SERVICES)}, all.")
    meta = await model_metadata(store, p["model"])
    _check_range(meta, layer, neuron)
    if neuron is not None:  # an unknown neuron is a 404, whatever data the service has
        await _neuron(store, meta["name"], layer, neuron)
    if service == "metadata":
        return meta  # as DeepDecipher: the metadata service is the bare metadata object
    if service != "all":
        try:
            value = await service_value(store, meta, service, layer, neuron, request)
        except Missing as m:  # 200 with what exists here, as DeepDecipher
            value = {**m.body, "available": await available_here(store, meta, layer, neuron, request)}
        value["metadata"] = meta
        return value
    out: dict[str, Any] = {}
    for name in SERVICES:
        try:
            out[name] = await service_value(store, meta, name, layer, neuron, request)
        except Missing as m:
            out[name] = m.body
        except Problem as e:
            out[name] = {"error": e.body.get("error", str(e))}
    return out


NEURONAV_KINDS = {"neuroscope": "Max Activating Dataset Example", "neuron2graph": "Neuron Graph",
                  "neuron_explainer": "Explanation"}


async def neuron_pages(store: Store, meta: dict[str, Any], layer: int, neuron: int,
                       request: Request) -> dict[str, Any]:
    """Each neuron-level service's page of one neuron, None where its data is missing."""
    pages: dict[str, Any] = {}
    for name in NEURONAV_KINDS:
        try:
            pages[name] = (await service_value(store, meta, name, layer, neuron, request))["data"]
        except Missing:
            pages[name] = None
    return pages


async def available_here(store: Store, meta: dict[str, Any], layer: int | None, neuron: int | None,
                         request: Request) -> list[str]:
    """The services with data for this page: the model's, and for a neuron those with its page."""
    if neuron is None:
        return meta["available_services"]
    pages = await neuron_pages(store, meta, layer, neuron, request)  # type: ignore[arg-type]
    return ["metadata"] + [name for name in SERVICES if pages.get(name) is not None]


async def neuronav(store: Store, request: Request, model: str, layer: int, neuron: int) -> dict[str, Any]:
    """NeuroNav's one document per neuron (``GET /api/GPT-2-XL/5/2332`` in its README): every
    service's neuron page at once, ``null`` where the data is not loaded, ``available`` naming
    the kinds present. ``neuron2graph`` and ``explanation`` carry an ``explanation-score``: the
    N2G pattern's held-out firing F1, and the explanation's own score. NeuroNav's explanation
    block is ``GPT-4``; here it is ``explanation`` and holds the best-scored explanation whatever
    its ``source``."""
    meta = await model_metadata(store, model)
    _check_range(meta, layer, neuron)
    info = await _neuron(store, model, layer, neuron)
    pages = await neuron_pages(store, meta, layer, neuron, request)
    n2g = pages["neuron2graph"]
    if n2g is not None:
        n2g = {"explanation-score": info.get("n2g_firing_f1"), **n2g}
    expl = pages["neuron_explainer"]
    if expl is not None:
        best = await store.query("rest_best_explanation", key=neuron_key(model, layer, neuron))
        expl = {"explanation-score": expl["score"], **expl, "source": best[0]["source"] if best else None}
    return {"model": model, "available": [label for name, label in NEURONAV_KINDS.items() if pages[name] is not None],
            "layer": layer, "neuron": neuron, "metadata": meta, "neuroscope": pages["neuroscope"],
            "neuron2graph": n2g, "explanation": expl}


async def index(request: Request) -> JSONResponse:
    return await _guard(_api_index, request)


async def service(request: Request) -> JSONResponse:
    return await _guard(_service, request)


async def not_found(request: Request) -> JSONResponse:
    """Any other path under /api (a trailing slash, an extra segment): a JSON 404, as every other answer."""
    return _json({"error": f"No route {request.url.path!r}: routes are /api, /api/{{model}}/{{service}}[/{{layer}}"
                           f"[/{{neuron}}]], /api/{{model}}/{{layer}}/{{neuron}} (see /api/openapi.json)."}, 404)


async def openapi(request: Request) -> JSONResponse:
    return _json(OPENAPI)


def _op(op_id: str, summary: str, params: list[str], extra: list[dict] | None = None) -> dict[str, Any]:
    desc = {"model": "Model name.", "service": f"One of: {', '.join(SERVICES)}.",
            "layer": "Layer index (0-based).", "neuron": "Neuron index within the layer (0-based)."}
    schema = {"model": {"type": "string"}, "service": {"type": "string", "enum": list(SERVICES)},
              "layer": {"type": "integer", "minimum": 0, "maximum": MAX_INDEX},
              "neuron": {"type": "integer", "minimum": 0, "maximum": MAX_INDEX}}
    err = {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    not_found_ = {**err, "description": "Unknown model, service, layer or neuron (a neuron that exists but lacks "
                                        "the service's data is a 200 listing what is missing)."}
    ok = {"description": "The page, or, where the model or neuron exists but lacks this service's data, what "
                         "is missing and what is available (as DeepDecipher answers, with 200).",
          "content": {"application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/Page"},
                                                                 {"$ref": "#/components/schemas/Missing"}]}}}}
    return {"get": {
        "operationId": op_id, "summary": summary,
        "parameters": [{"name": n, "in": "path", "required": True, "description": desc[n], "schema": schema[n]}
                       for n in params] + (extra or []),
        "responses": {"200": ok, "400": err, "404": not_found_, "503": err},
    }}


_QUERY = [
    {"name": "query", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "neuron2graph-search only: activating:TOKEN, important:TOKEN or any:TOKEN; comma = AND."},
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
     "description": "Most items in list answers (important neurons, texts, similar neurons)."},
]

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "NeuroGraph REST API (DeepDecipher-compatible)", "version": "1.0"},
    "paths": {
        "/api": {"get": {"operationId": "index", "summary": "Index of models with their metadata.",
                         "responses": {"200": {"description": "OK"}}}},
        "/api/{model}/{service}": _op("model_service", "A service's model page.", ["model", "service"], _QUERY),
        "/api/{model}/{service}/{layer}": _op("layer_service", "A service's layer page.",
                                              ["model", "service", "layer"], _QUERY),
        "/api/{model}/{service}/{layer}/{neuron}": _op("neuron_service", "A service's neuron page.",
                                                       ["model", "service", "layer", "neuron"], _QUERY),
        "/api/{model}/all": _op("model_all", "Every service's model page.", ["model"]),
        "/api/{model}/all/{layer}": _op("layer_all", "Every service's layer page.", ["model", "layer"]),
        "/api/{model}/all/{layer}/{neuron}": _op("neuron_all", "Every service's neuron page.",
                                                 ["model", "layer", "neuron"]),
        "/api/{model}/{layer}/{neuron}": _op("neuronav", "NeuroNav's neuron document: model, available, layer, "
                                                         "neuron, metadata, neuroscope, neuron2graph, explanation.",
                                             ["model", "layer", "neuron"]),
    },
    "components": {"schemas": {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "Page": {"type": "object", "description": "A service's page and the model's metadata (the metadata "
                                                  "service: the bare metadata object; /all: one entry per service).",
                 "properties": {"data": {}, "metadata": {"type": "object"}}},
        "Missing": {"type": "object", "required": ["missing_data_objects", "available"], "properties": {
            "missing_data_objects": {"type": "array", "items": {"type": "string"},
                                     "description": "The services whose data is missing here."},
            "missing_data_types": {"type": "array", "items": {"type": "string"},
                                   "description": "The same list under this API's earlier name."},
            "available": {"type": "array", "items": {"type": "string"},
                          "description": "The services with data for this model (model and layer pages) or "
                                         "neuron (neuron pages)."},
            "message": {"type": "string"}, "metadata": {"type": "object"}}}}},
}

routes: list[BaseRoute] = [
    Route("/api", index, methods=["GET"]),
    Route("/api/openapi.json", openapi, methods=["GET"]),
    Route("/doc/openapi.json", openapi, methods=["GET"]),
    Route("/api/{model}/{service}", service, methods=["GET"]),
    Route("/api/{model}/{service}/{layer}", service, methods=["GET"]),
    Route("/api/{model}/{service}/{layer}/{neuron}", service, methods=["GET"]),
    Route("/api/{rest:path}", not_found, methods=["GET"]),
]
