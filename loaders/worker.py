"""The model worker: a process of its own that holds a model and answers requests about text.

The API process never imports torch; it sends requests here over a unix socket, one JSON
object per line, and reads one JSON line back (see ``neurograph.worker`` for the client):

    {"id": 1, "op": "run_text", "text": "In the beginning", "top": 10}
    {"id": 1, "ok": true, "result": {"tokens": [...], "prediction": [...]}}

Operations: ``ping``, ``run_text`` (each token's most active neurons, absolute and relative to
each neuron's stored maximum, and the next-token prediction), ``activations`` (given neurons'
activations on every token), ``attribute`` (the prompt's attribution graph, see
attribution.py) and ``steer`` (a continuation with and without interventions on
neurons, and the logits that moved most at the first step). Activations are the MLP's
``blocks.{l}.mlp.hook_post``, as the build harvests them, on the text after the BOS token the
build also puts first.

Requests run one at a time (torch uses the cores itself); at most ``queue`` wait, and one more
is answered "busy" at once rather than queued without bound. Texts are capped at
``max_tokens`` tokens and continuations at ``max_new_tokens``.

    python -m loaders.worker --model smollm2-135m --socket /tmp/ng-worker.sock [--device cpu]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch

from neurograph.config import Settings
from neurograph.errors import NeuroGraphError

from .model import LoadedModel, load_model, tiny_model

log = logging.getLogger("neurograph.worker")
HOOK = "blocks.{}.mlp.hook_post"


class BadRequest(NeuroGraphError):
    """A request the worker will not run (too long, unknown neuron, bad arguments)."""


@dataclass
class Limits:
    max_tokens: int = 512
    max_new_tokens: int = 64
    max_top: int = 50
    max_neurons: int = 64


class ModelOps:
    """What the worker computes, on one loaded model. ``max_acts`` [n_layers, d_mlp] holds each
    neuron's stored maximum activation (NaN where the graph has none)."""

    def __init__(self, model: LoadedModel, max_acts: np.ndarray | None = None, limits: Limits | None = None) -> None:
        self.model = model
        self.n_layers, self.d_mlp = model.info.n_layers, model.info.d_mlp
        self.max_acts = max_acts if max_acts is not None else np.full((self.n_layers, self.d_mlp), np.nan)
        self.limits = limits or Limits()
        self.graph_name = model.name  # the model's name in the graph (main() may set another)

    # --- helpers ---------------------------------------------------------------------------
    def _text_ok(self, text: Any) -> str:
        if not isinstance(text, str) or not text:
            raise BadRequest("text must be a non-empty string")
        return text

    def tokens(self, text: str) -> list[int]:
        self._text_ok(text)
        ids = self.model.to_tokens(text, prepend_bos=True)
        if len(ids) > self.limits.max_tokens:
            raise BadRequest(f"the text is {len(ids)} tokens long; the limit is {self.limits.max_tokens}")
        return ids

    def _device(self) -> torch.device:
        return next(self.model.bridge.parameters()).device

    @torch.no_grad()
    def forward(self, ids: list[int], hooks: list | None = None, capture: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits [T, vocab] and, if ``capture``, every layer's hook_post [T, n_layers, d_mlp]."""
        acts = torch.empty((len(ids), self.n_layers, self.d_mlp)) if capture else None

        def keep(layer: int):
            def hook(t: torch.Tensor, hook: Any = None) -> None:
                acts[:, layer] = t[0].detach().float().cpu()
            return hook

        fwd = list(hooks or [])
        if capture:
            fwd += [(HOOK.format(l), keep(l)) for l in range(self.n_layers)]
        tokens = torch.tensor([ids], device=self._device())
        logits = self.model.bridge.run_with_hooks(tokens, fwd_hooks=fwd, return_type="logits")
        return logits[0].float().cpu(), acts

    def _relative(self, layer: int, index: int, value: float) -> float | None:
        m = float(self.max_acts[layer, index])
        return value / m if m > 0 and math.isfinite(m) else None

    def _prediction(self, logits: torch.Tensor, k: int = 5) -> list[dict]:
        probs = torch.softmax(logits[-1], dim=-1)
        p, i = probs.topk(k)
        return [{"token": self.model.token_strs([t])[0], "id": int(t), "probability": float(q)}
                for q, t in zip(p.tolist(), i.tolist())]

    def _neurons(self, neurons: Any) -> list[tuple[int, int]]:
        if not isinstance(neurons, list) or not neurons:
            raise BadRequest("neurons must be a non-empty list of [layer, index]")
        if len(neurons) > self.limits.max_neurons:
            raise BadRequest(f"at most {self.limits.max_neurons} neurons at once")
        out = []
        for n in neurons:
            layer, index = int(n[0]), int(n[1])
            if not (0 <= layer < self.n_layers and 0 <= index < self.d_mlp):
                raise BadRequest(f"no neuron {layer}/{index} in {self.model.name} "
                                 f"({self.n_layers} layers x {self.d_mlp} neurons)")
            out.append((layer, index))
        return out

    # --- operations ------------------------------------------------------------------------
    def run_text(self, text: str, top: int = 10) -> dict:
        top = max(1, min(int(top), self.limits.max_top))
        ids = self.tokens(text)
        logits, acts = self.forward(ids)
        flat = acts.reshape(len(ids), -1)  # [T, n_layers * d_mlp]
        maxes = torch.from_numpy(self.max_acts.reshape(-1)).float()
        rel = torch.where(maxes > 0, flat / maxes, torch.full_like(flat, float("-inf")))
        out = []
        strs = self.model.token_strs(ids)
        for pos in range(len(ids)):
            def entries(order: torch.Tensor) -> list[dict]:
                rows = []
                for j in order.tolist():
                    layer, index = divmod(int(j), self.d_mlp)
                    v = float(flat[pos, j])
                    rows.append({"layer": layer, "index": index, "activation": v,
                                 "relative": self._relative(layer, index, v)})
                return rows

            by_rel = rel[pos]
            n_rel = int(torch.isfinite(by_rel).sum())
            out.append({"position": pos, "token": strs[pos], "id": ids[pos],
                        "top": entries(flat[pos].topk(top).indices),
                        "top_relative": entries(by_rel.topk(min(top, n_rel)).indices) if n_rel else []})
        return {"tokens": out, "prediction": self._prediction(logits)}

    def activations(self, text: str, neurons: Any) -> dict:
        wanted = self._neurons(neurons)
        ids = self.tokens(text)
        _, acts = self.forward(ids)
        return {"tokens": self.model.token_strs(ids),
                "neurons": [{"layer": l, "index": i, "activations": acts[:, l, i].tolist(),
                             "max_activation": _finite(self.max_acts[l, i])} for l, i in wanted]}

    def interventions(self, items: Any) -> list:
        """Hooks for ``items`` [{layer, index, value | scale}]: set the neuron's activation to
        ``value`` (or multiply it by ``scale``) at every position."""
        if not isinstance(items, list) or not items:
            raise BadRequest("interventions must be a non-empty list")
        by_layer: dict[int, list[tuple[int, float | None, float | None]]] = {}
        for it in items:
            (layer, index), = self._neurons([[it.get("layer"), it.get("index")]])
            value, scale = it.get("value"), it.get("scale")
            if (value is None) == (scale is None):
                raise BadRequest("each intervention sets exactly one of value and scale")
            by_layer.setdefault(layer, []).append((index, value, scale))

        def make(changes: list[tuple[int, float | None, float | None]]):
            def hook(t: torch.Tensor, hook: Any = None) -> torch.Tensor:
                t = t.clone()
                for index, value, scale in changes:
                    if value is not None:
                        t[..., index] = float(value)
                    else:
                        t[..., index] = t[..., index] * float(scale)
                return t
            return hook

        return [(HOOK.format(l), make(ch)) for l, ch in by_layer.items()]

    def _generate(self, ids: list[int], hooks: list, n: int, temperature: float, seed: int) -> tuple[list[int], torch.Tensor]:
        gen = torch.Generator().manual_seed(int(seed))
        out = list(ids)
        first = None
        for _ in range(n):
            logits, _ = self.forward(out, hooks, capture=False)
            last = logits[-1]
            if first is None:
                first = last
            if temperature <= 0:
                nxt = int(last.argmax())
            else:
                nxt = int(torch.multinomial(torch.softmax(last / temperature, dim=-1), 1, generator=gen))
            out.append(nxt)
            if nxt == self.model.tokenizer.eos_token_id:
                break
        return out[len(ids):], first

    def steer(self, prompt: str, interventions: Any, max_new_tokens: int = 20, temperature: float = 0.0,
              seed: int = 0, top: int = 10) -> dict:
        n = int(max_new_tokens)
        if not 1 <= n <= self.limits.max_new_tokens:
            raise BadRequest(f"maxNewTokens must be 1 to {self.limits.max_new_tokens}")
        if not 0 <= float(temperature) <= 5:
            raise BadRequest("temperature must be 0 to 5")
        hooks = self.interventions(interventions)
        ids = self.tokens(prompt)
        base, base_first = self._generate(ids, [], n, float(temperature), seed)
        steered, steer_first = self._generate(ids, hooks, n, float(temperature), seed)
        diff = steer_first - base_first
        top = max(1, min(int(top), self.limits.max_top))

        def moved(order: torch.Tensor) -> list[dict]:
            return [{"token": self.model.token_strs([t])[0], "id": int(t), "change": float(diff[t])}
                    for t in order.tolist()]

        return {"prompt_tokens": self.model.token_strs(ids),
                "baseline": self.model.tokenizer.decode(base), "steered": self.model.tokenizer.decode(steered),
                "baseline_tokens": self.model.token_strs(base), "steered_tokens": self.model.token_strs(steered),
                "promoted": moved(diff.topk(top).indices), "suppressed": moved((-diff).topk(top).indices)}

    def handle(self, req: dict) -> Any:
        op = req.get("op")
        if op == "ping":
            return {"model": self.graph_name, "n_layers": self.n_layers, "d_mlp": self.d_mlp}
        if op == "run_text":
            return self.run_text(req.get("text"), req.get("top", 10))
        if op == "activations":
            return self.activations(req.get("text"), req.get("neurons"))
        if op == "attribute":
            from .attribution import AttributionError, attribute

            try:
                g = attribute(self.model, self._text_ok(req.get("prompt")), req.get("target") or None,
                              max_neurons=max(10, min(int(req.get("max_neurons", 200)), 500)),
                              max_tokens=min(self.limits.max_tokens, 64))
            except AttributionError as e:
                raise BadRequest(str(e)) from e
            out = g.as_dict()
            out["model"] = self.graph_name
            return out
        if op == "steer":
            return self.steer(req.get("prompt"), req.get("interventions"), req.get("max_new_tokens", 20),
                              req.get("temperature", 0.0), req.get("seed", 0), req.get("top", 10))
        raise BadRequest(f"unknown operation {op!r}")


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


async def stored_maxima(settings: Settings, model: str, n_layers: int, d_mlp: int) -> np.ndarray:
    """Each neuron's stored maximum activation from the graph (NaN where there is none)."""
    from neurograph.store import open_store

    out = np.full((n_layers, d_mlp), np.nan)
    store = await open_store(settings, schema=False)
    try:
        for r in await store.query("neuron_maxima", model=model):
            if r["max"] is not None and 0 <= r["layer"] < n_layers and 0 <= r["index"] < d_mlp:
                out[r["layer"], r["index"]] = float(r["max"])
    finally:
        await store.close()
    return out


class Server:
    """The unix-socket front of ModelOps: bounded, one request computing at a time."""

    def __init__(self, ops: ModelOps, socket_path: Path, *, queue: int = 8, timeout_s: float = 60.0) -> None:
        self.ops = ops
        self.socket_path = Path(socket_path)
        self.queue = queue
        self.timeout_s = timeout_s
        self.pending = 0
        self.lock = asyncio.Lock()

    async def _answer(self, req: dict) -> dict:
        if self.pending >= self.queue + 1:
            return {"id": req.get("id"), "ok": False, "busy": True,
                    "error": f"the model worker is busy ({self.pending} requests in hand): retry shortly"}
        self.pending += 1
        try:
            async with self.lock:
                result = await asyncio.wait_for(asyncio.to_thread(self.ops.handle, req), self.timeout_s)
            return {"id": req.get("id"), "ok": True, "result": result}
        except BadRequest as e:
            return {"id": req.get("id"), "ok": False, "error": str(e)}
        except asyncio.TimeoutError:
            return {"id": req.get("id"), "ok": False, "error": f"the model took longer than {self.timeout_s:g} s"}
        except Exception as e:  # noqa: BLE001 - answer, log, keep serving
            log.exception("worker request failed")
            return {"id": req.get("id"), "ok": False, "error": f"the model worker failed: {type(e).__name__}: {e}"}
        finally:
            self.pending -= 1

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    req = orjson.loads(line)
                    assert isinstance(req, dict)
                except (ValueError, AssertionError):
                    reply = {"ok": False, "error": "a request is one JSON object per line"}
                else:
                    reply = await self._answer(req)
                writer.write(orjson.dumps(reply) + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def serve(self) -> None:
        if self.socket_path.exists():
            self.socket_path.unlink()
        server = await asyncio.start_unix_server(self._client, path=str(self.socket_path), limit=2**20)
        os.chmod(self.socket_path, 0o700)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("model worker for %s listening on %s", self.ops.model.name, self.socket_path)
        async with server:
            await stop.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loaders.worker", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a model name load_model knows, or 'tiny' (tests)")
    ap.add_argument("--graph-model", help="the model's name in the graph (default: the loaded model's)")
    ap.add_argument("--socket", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--queue", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    torch.set_grad_enabled(False)
    model = tiny_model() if a.model == "tiny" else load_model(a.model)
    if a.device != "cpu":
        model.bridge.to(a.device)
    name = a.graph_model or model.name
    try:
        maxima = asyncio.run(stored_maxima(Settings.from_env(), name, model.info.n_layers, model.info.d_mlp))
    except NeuroGraphError as e:
        log.warning("no stored maxima for %s (%s): relative activations are not given", name, e)
        maxima = None
    ops = ModelOps(model, maxima, Limits(max_tokens=a.max_tokens))
    ops.graph_name = name
    asyncio.run(Server(ops, Path(a.socket), queue=a.queue, timeout_s=a.timeout).serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
