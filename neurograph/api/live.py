"""Asking the model live: GraphQL fields answered by the model worker (``neurograph.worker``).

``runText`` (search via inference: each token's most active neurons, and the next-token
prediction), ``neuronActivations`` (given neurons on your text, relative to their stored
maximum) and ``steer`` (a continuation with and without clamping or scaling neurons). They
cost a forward pass each, so they need what writes need (the API key, or a loopback client
without one), are rate-limited per client, and answer a clear error when no worker runs.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import Any, Optional

import strawberry

from ..domain import neuron_key, parse_neuron_key
from ..errors import InvalidKey, NeuroGraphError
from ..worker import WorkerUnavailable, START_HINT
from .ids import from_global_id
from .types import Info, Neuron

MAX_TEXT_CHARS = 4000


class RateLimited(NeuroGraphError):
    """Too many model requests from one client."""


class RateLimiter:
    """At most ``per_minute`` requests per client in any sliding minute.

        limiter = RateLimiter(30); limiter.check("127.0.0.1")
    """

    def __init__(self, per_minute: int = 60) -> None:
        self.per_minute = per_minute
        self.seen: dict[str, deque[float]] = defaultdict(deque)

    def check(self, client: str) -> None:
        now = time.monotonic()
        q = self.seen[client]
        while q and now - q[0] > 60:
            q.popleft()
        if len(q) >= self.per_minute:
            raise RateLimited(f"at most {self.per_minute} model requests a minute per client: retry in "
                              f"{60 - (now - q[0]):.0f} s")
        q.append(now)


async def _ask(info: Info, model: str, op: str, **args: Any) -> Any:
    ctx = info.context
    if not ctx.authorized:
        raise PermissionError_("running the model needs a valid x-api-key header (or, with no key "
                               "configured, a loopback client)")
    state = ctx.request.app.state if ctx.request is not None else None
    worker = getattr(state, "worker", None)
    if worker is None:
        raise WorkerUnavailable(f"no model worker is running for this server: {START_HINT}")
    if worker.graph_name is None:  # another process's worker (serve --processes): ask once
        worker.graph_name = (await worker.client.request("ping"))["model"]
    if worker.graph_name != model:
        raise InvalidKey(f"the model worker runs {worker.graph_name!r}, not {model!r}")
    client = ctx.request.client.host if ctx.request is not None and ctx.request.client else "?"
    state.rate_limiter.check(client)
    return await worker.client.request(op, **args)


class PermissionError_(NeuroGraphError, PermissionError):
    """A model request from a client that may not make one."""


@strawberry.type(description="A neuron's activation on one token of your text.")
class NeuronActivation:
    layer: int
    index: int
    activation: float
    relative: Optional[float] = strawberry.field(description="activation / the neuron's stored max activation")
    model: strawberry.Private[str]

    @strawberry.field(description="The neuron in the graph (null when the graph does not have it).")
    async def neuron(self, info: Info) -> Optional[Neuron]:
        row = await info.context.loaders.neuron.load(neuron_key(self.model, self.layer, self.index))
        return Neuron(row, full=True) if row is not None else None


@strawberry.type
class TokenNeurons:
    position: int
    token: str
    id: int
    top: list[NeuronActivation] = strawberry.field(description="most active neurons on this token")
    top_relative: list[NeuronActivation] = strawberry.field(
        description="most active relative to each neuron's stored max (neurons the graph knows a max for)")


@strawberry.type
class Prediction:
    token: str
    id: int
    probability: float


@strawberry.type(description="Your text through the model: each token's neurons and the next-token prediction.")
class TextRun:
    tokens: list[TokenNeurons]
    prediction: list[Prediction]


@strawberry.type
class NeuronOnText:
    layer: int
    index: int
    activations: list[float]
    max_activation: Optional[float] = strawberry.field(description="the neuron's stored max (normalises the heatmap)")
    relative: list[Optional[float]]


@strawberry.type
class TextActivations:
    tokens: list[str]
    neurons: list[NeuronOnText]


@strawberry.input(description="Set a neuron's activation to `value`, or multiply it by `scale`, at every position.")
class Intervention:
    neuron: strawberry.ID = strawberry.field(description="a neuron id or key (model/layer/index)")
    value: Optional[float] = None
    scale: Optional[float] = None


@strawberry.type
class LogitChange:
    token: str
    id: int
    change: float


@strawberry.type(description="A continuation with and without the interventions (same sampling seed).")
class SteerResult:
    prompt_tokens: list[str]
    baseline: str
    steered: str
    baseline_tokens: list[str]
    steered_tokens: list[str]
    promoted: list[LogitChange] = strawberry.field(description="tokens whose logits rose most at the first step")
    suppressed: list[LogitChange] = strawberry.field(description="tokens whose logits fell most at the first step")


def _text(text: str, what: str = "text") -> str:
    if not text or not text.strip():
        raise InvalidKey(f"{what} must not be empty")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidKey(f"{what} is longer than {MAX_TEXT_CHARS} characters")
    return text


def _neuron_ref(ref: str, model: str) -> tuple[int, int]:
    try:
        label, key = from_global_id(ref)
        if label != "Neuron":
            raise InvalidKey(f"{ref!r} is a {label}, not a neuron")
    except InvalidKey:
        key = ref
    m, layer, index = parse_neuron_key(key)
    if m != model:
        raise InvalidKey(f"neuron {key!r} is not of model {model!r}")
    return layer, index


def _acts(model: str, rows: list[dict]) -> list[NeuronActivation]:
    return [NeuronActivation(layer=r["layer"], index=r["index"], activation=r["activation"], relative=r["relative"],
                             model=model) for r in rows]


@strawberry.type
class LiveQuery:
    @strawberry.field(description="Run your text through the model (needs a model worker: `neurograph serve "
                                  "--model NAME`): for each token the neurons that fire most on it, by activation "
                                  "and relative to each neuron's stored max, and the next-token prediction.")
    async def run_text(self, info: Info, model: str, text: str, top: int = 10) -> TextRun:
        if not 1 <= top <= 50:
            raise InvalidKey("top must be 1 to 50")
        r = await _ask(info, model, "run_text", text=_text(text), top=top)
        return TextRun(
            tokens=[TokenNeurons(position=t["position"], token=t["token"], id=t["id"], top=_acts(model, t["top"]),
                                 top_relative=_acts(model, t["top_relative"])) for t in r["tokens"]],
            prediction=[Prediction(**p) for p in r["prediction"]])

    @strawberry.field(description="Per-token activations of the given neurons on your text, with each "
                                  "neuron's stored max (the Neuroscope heatmap for your own text).")
    async def neuron_activations(self, info: Info, model: str, text: str, neurons: list[strawberry.ID]) -> TextActivations:
        if not 1 <= len(neurons) <= 64:
            raise InvalidKey("give 1 to 64 neurons")
        refs = [list(_neuron_ref(n, model)) for n in neurons]
        r = await _ask(info, model, "activations", text=_text(text), neurons=refs)
        out = []
        for n in r["neurons"]:
            m = n["max_activation"]
            out.append(NeuronOnText(layer=n["layer"], index=n["index"], activations=n["activations"],
                                    max_activation=m,
                                    relative=[a / m if m and m > 0 else None for a in n["activations"]]))
        return TextActivations(tokens=r["tokens"], neurons=out)

    @strawberry.field(description="Steer generation with neurons: the continuation of `prompt` with and without "
                                  "the interventions, and the tokens whose logits moved most at the first step.")
    async def steer(self, info: Info, model: str, prompt: str, interventions: list[Intervention],
                    max_new_tokens: int = 20, temperature: float = 0.0, seed: int = 0) -> SteerResult:
        if not 1 <= len(interventions) <= 16:
            raise InvalidKey("give 1 to 16 interventions")
        items = []
        for it in interventions:
            layer, index = _neuron_ref(it.neuron, model)
            items.append({"layer": layer, "index": index, "value": it.value, "scale": it.scale})
        r = await _ask(info, model, "steer", prompt=_text(prompt, "prompt"), interventions=items,
                       max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        return SteerResult(prompt_tokens=r["prompt_tokens"], baseline=r["baseline"], steered=r["steered"],
                           baseline_tokens=r["baseline_tokens"], steered_tokens=r["steered_tokens"],
                           promoted=[LogitChange(**c) for c in r["promoted"]],
                           suppressed=[LogitChange(**c) for c in r["suppressed"]])
