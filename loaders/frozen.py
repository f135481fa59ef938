"""The frozen-linear forward pass that attribution graphs are computed in.

The prompt runs through the model with **attention patterns and normalisation scales frozen** at
their values on that prompt, and with every MLP's output written from a *leaf* copy of its
neurons' activations. Then the residual stream, every MLP's input and every logit are linear
in the sources: the input embeddings, the neuron activations and the biases (all biases are
multiplied by one scalar leaf, ``one``, so their summed effect is its gradient). Its logits
equal the model's (the tests check it).

Two families, read from the Hugging Face model under the TransformerLens bridge:

* Llama-style (SmolLM2, ``tiny_model()``): RMSNorm (scale ``1/rms`` frozen), rotary attention,
  gated MLP; neuron = ``silu(gate) * up``; no biases.
* GPT-2-style (``tiny_model(gated=False)``, gpt2): LayerNorm (the per-token ``1/sigma`` frozen;
  the mean subtraction is linear and stays), learned positions (the input embedding of a token
  is ``wte + wpe`` at its position), GELU MLP; neuron = the post-GELU activation; biases.

Anything else is refused with ``AttributionError`` rather than attributed wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from neurograph.errors import NeuroGraphError

from .model import LoadedModel


class AttributionError(NeuroGraphError):
    """A prompt or target that cannot be attributed (unsupported model, unknown token)."""


@dataclass
class Frozen:
    """One frozen-linear forward: the logits, and the leaves the residual stream is linear in."""

    logits: torch.Tensor  # [T, vocab]
    embeds: torch.Tensor  # leaf [T, d_model]: each token's input embedding (with its position's, if learned)
    acts: list[torch.Tensor]  # per layer, leaf [T, d_mlp]: what the MLP writes from
    acts_in: list[torch.Tensor]  # per layer [T, d_mlp]: the activation as a function of the residual
    one: torch.Tensor  # leaf scalar 1.0 that every bias is multiplied by
    fixed: list[torch.Tensor] = field(default_factory=list)  # the frozen patterns and norm scales, in order


class _Fixed:
    """The frozen quantities of a run, recorded in order, or replayed from an earlier run."""

    def __init__(self, replay: list[torch.Tensor] | None) -> None:
        self.replay = replay
        self.seen: list[torch.Tensor] = []

    def __call__(self, value: torch.Tensor) -> torch.Tensor:
        value = value.detach() if self.replay is None else self.replay[len(self.seen)]
        self.seen.append(value)
        return value


def _raw(module: Any) -> Any:
    """The Hugging Face module a bridge component wraps (or the module itself)."""
    return getattr(module, "original_component", None) or module


class _Llama:
    """RMSNorm, rotary attention, gated MLP, no biases."""

    def __init__(self, hf: Any, T: int, fixed: _Fixed, one: torch.Tensor) -> None:
        self.hf, self.inner, self.fixed, self.T = hf, hf.model, fixed, T
        self.layers = list(self.inner.layers)
        self.causal = torch.full((T, T), float("-inf")).triu(1)

    def norm(self, x: torch.Tensor, norm: Any) -> torch.Tensor:
        scale = self.fixed(torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon))
        return norm.weight * (x * scale)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        e = self.inner.embed_tokens(ids[None])[0].detach().float()
        self.cos, self.sin = self.inner.rotary_emb(e[None], torch.arange(self.T)[None])
        return e

    def attn(self, li: int, resid: torch.Tensor) -> torch.Tensor:
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

        layer, T = self.layers[li], self.T
        att = layer.self_attn
        x = self.norm(resid, layer.input_layernorm)[None]
        hd = att.head_dim
        q = att.q_proj(x).view(1, T, -1, hd).transpose(1, 2)
        k = att.k_proj(x).view(1, T, -1, hd).transpose(1, 2)
        v = att.v_proj(x).view(1, T, -1, hd).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, self.cos, self.sin)
        groups = q.shape[1] // k.shape[1]
        k, v = repeat_kv(k, groups), repeat_kv(v, groups)
        pattern = self.fixed(torch.softmax(q @ k.transpose(-1, -2) * att.scaling + self.causal, dim=-1))
        return att.o_proj((pattern @ v).transpose(1, 2).reshape(1, T, -1))[0]

    def mlp_in(self, li: int, resid: torch.Tensor) -> torch.Tensor:
        layer = self.layers[li]
        mlp, x = layer.mlp, self.norm(resid, layer.post_attention_layernorm)
        return mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)

    def mlp_out(self, li: int, a: torch.Tensor) -> torch.Tensor:
        return self.layers[li].mlp.down_proj(a)

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        return self.hf.lm_head(self.norm(resid, self.inner.norm))


class _GPT2:
    """LayerNorm, learned positions, fused-QKV attention, GELU MLP (Conv1D weights: x @ W + b),
    with every bias times ``one``."""

    def __init__(self, hf: Any, T: int, fixed: _Fixed, one: torch.Tensor) -> None:
        self.hf, self.tr, self.fixed, self.one, self.T = hf, hf.transformer, fixed, one, T
        self.layers = list(self.tr.h)
        self.causal = torch.full((T, T), float("-inf")).triu(1)

    def _lin(self, x: torch.Tensor, conv: Any) -> torch.Tensor:
        conv = _raw(conv)
        w = conv.weight if type(conv).__name__ == "Conv1D" else conv.weight.T  # Conv1D stores [in, out]
        return x @ w + (self.one * conv.bias if conv.bias is not None else 0)

    def norm(self, x: torch.Tensor, ln: Any) -> torch.Tensor:
        ln = _raw(ln)
        xc = x - x.mean(-1, keepdim=True)  # linear: stays live
        scale = self.fixed(torch.rsqrt(xc.pow(2).mean(-1, keepdim=True) + ln.eps))
        return xc * scale * ln.weight + self.one * ln.bias

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        wte, wpe = _raw(self.tr.wte).weight, _raw(self.tr.wpe).weight
        return (wte[ids] + wpe[: self.T]).detach().float()

    def attn(self, li: int, resid: torch.Tensor) -> torch.Tensor:
        block, T = self.layers[li], self.T
        att = _raw(block.attn)
        x = self.norm(resid, block.ln_1)
        q, k, v = (t.view(T, att.num_heads, att.head_dim).transpose(0, 1)
                   for t in self._lin(x, att.c_attn).split(att.split_size, dim=-1))
        scores = q @ k.transpose(-1, -2)
        if att.scale_attn_weights:
            scores = scores / (v.shape[-1] ** 0.5)
        if att.scale_attn_by_inverse_layer_idx:
            scores = scores / float(att.layer_idx + 1)
        pattern = self.fixed(torch.softmax(scores + self.causal, dim=-1))
        return self._lin((pattern @ v).transpose(0, 1).reshape(T, -1), att.c_proj)

    def mlp_in(self, li: int, resid: torch.Tensor) -> torch.Tensor:
        block = self.layers[li]
        mlp = _raw(block.mlp)
        return mlp.act(self._lin(self.norm(resid, block.ln_2), mlp.c_fc))

    def mlp_out(self, li: int, a: torch.Tensor) -> torch.Tensor:
        return self._lin(a, _raw(self.layers[li].mlp).c_proj)

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        return self._lin(self.norm(resid, self.tr.ln_f), self.hf.lm_head)


def architecture(model: LoadedModel) -> tuple[Any, type]:
    """The Hugging Face model under the bridge and its frozen-forward family, or a clear refusal."""
    hf = getattr(model.bridge, "original_model", None)
    inner = getattr(hf, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is not None and hasattr(layers[0].mlp, "gate_proj") and hasattr(layers[0], "input_layernorm"):
        return hf, _Llama
    blocks = getattr(getattr(hf, "transformer", None), "h", None)
    if (blocks is not None and hasattr(hf.transformer, "wpe") and hasattr(_raw(blocks[0].mlp), "c_fc")
            and hasattr(_raw(blocks[0].attn), "c_attn") and isinstance(_raw(blocks[0].ln_1), torch.nn.LayerNorm)):
        return hf, _GPT2
    raise AttributionError(f"attribution supports Llama-style (gated MLP, RMSNorm) and GPT-2-style (GELU MLP, "
                           f"LayerNorm, learned positions) models; {model.name} is neither")


def frozen_forward(model: LoadedModel, ids: list[int], delta: dict[tuple[int, int, int], float] | None = None,
                   frozen: Frozen | None = None) -> Frozen:
    """The prompt through the model with attention patterns and norm scales frozen and MLP
    outputs written from leaves.

    ``delta`` {(layer, position, index): d} adds d to those leaves (finite differences), with
    patterns and scales taken from ``frozen`` (an unperturbed run) so the model stays linear."""
    hf, family = architecture(model)
    T = len(ids)
    fixed = _Fixed(frozen.fixed if frozen is not None else None)
    one = torch.ones((), requires_grad=True)
    arch = family(hf, T, fixed, one)
    embeds = arch.embed(torch.tensor(ids)).requires_grad_(True)
    resid = embeds
    acts, acts_in = [], []
    for li in range(len(arch.layers)):
        resid = resid + arch.attn(li, resid)
        a_in = arch.mlp_in(li, resid)
        a = a_in.detach().clone()
        for (dl, dp, di), d in (delta or {}).items():
            if dl == li:
                a[dp, di] += d
        a.requires_grad_(True)
        acts.append(a)
        acts_in.append(a_in)
        resid = resid + arch.mlp_out(li, a)
    return Frozen(arch.unembed(resid), embeds, acts, acts_in, one, fixed.seen)
