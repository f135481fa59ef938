"""The weights of a transformer that weight-based connectivity needs, in one place.

TransformerLens conventions (row vectors: ``x @ W``). The bridge gives raw weights (norms
not folded), so the norm scales travel beside them and the ``*_eff`` helpers fold them in:
the MLP reads ``ln2(x)``, so a neuron's effective input direction is ``ln2_scale * W_in[:, n]``.

    w = ModelWeights.random(n_layers=2, d_model=16, d_mlp=24, n_heads=4, d_vocab=50, seed=0)
    w = from_bridge(loaded.bridge)          # or model_weights(loaded)
    ins = w.in_eff()                        # [L, d_mlp, d_model], ln2 folded in
    outs = w.out_rows()                     # [L, d_mlp, d_model]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

Tensor = torch.Tensor


@dataclass
class ModelWeights:
    """Weights of every layer, stacked; GQA keys/values are already repeated per query head.

    Shapes: W_in/W_gate [L, d_model, d_mlp], W_out [L, d_mlp, d_model], W_E [d_vocab, d_model],
    W_U [d_model, d_vocab], W_Q/W_K/W_V [L, H, d_model, d_head], W_O [L, H, d_head, d_model],
    ln1/ln2 [L, d_model] (scales before attention / the MLP), lnf [d_model].
    ``norm`` is "rms" (RMSNorm: scale only) or "ln" (LayerNorm: also removes the mean, so
    effective reading directions are centred).

        w = ModelWeights.random(n_layers=2, d_model=8, d_mlp=12, n_heads=2, d_vocab=20)
        w.n_neurons   # 24
    """

    W_in: Tensor
    W_out: Tensor
    W_E: Tensor
    W_U: Tensor
    W_Q: Tensor
    W_K: Tensor
    W_V: Tensor
    W_O: Tensor
    ln1: Tensor
    ln2: Tensor
    lnf: Tensor
    W_gate: Tensor | None = None
    norm: str = "rms"

    # --- sizes ------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return self.W_in.shape[0]

    @property
    def d_model(self) -> int:
        return self.W_in.shape[1]

    @property
    def d_mlp(self) -> int:
        return self.W_in.shape[2]

    @property
    def n_heads(self) -> int:
        return self.W_Q.shape[1]

    @property
    def d_head(self) -> int:
        return self.W_Q.shape[3]

    @property
    def d_vocab(self) -> int:
        return self.W_E.shape[0]

    @property
    def n_neurons(self) -> int:
        return self.n_layers * self.d_mlp

    @property
    def gated(self) -> bool:
        return self.W_gate is not None

    # --- effective directions (norm scales folded in) -----------------------------------
    def _center(self, x: Tensor) -> Tensor:
        # LayerNorm subtracts the mean over d_model, so only the centred part of a reading
        # direction matters (what TransformerLens' fold_ln does); RMSNorm does not centre.
        return x - x.mean(dim=-1, keepdim=True) if self.norm == "ln" else x

    def in_eff(self) -> Tensor:
        """Neuron input directions [L, d_mlp, d_model]: ``ln2 * W_in[l][:, n]``."""
        return self._center(self.W_in.transpose(1, 2) * self.ln2[:, None, :])

    def gate_eff(self) -> Tensor | None:
        """Gate directions [L, d_mlp, d_model] of a gated MLP, ln2 folded in; None otherwise."""
        if self.W_gate is None:
            return None
        return self._center(self.W_gate.transpose(1, 2) * self.ln2[:, None, :])

    def out_rows(self) -> Tensor:
        """Neuron output directions [L, d_mlp, d_model] (rows of W_out)."""
        return self.W_out

    def qkv_eff(self) -> tuple[Tensor, Tensor, Tensor]:
        """W_Q, W_K, W_V with ln1 folded in, [L, H, d_model, d_head] each."""
        s = self.ln1[:, None, :, None]
        fold = lambda W: self._center((W * s).transpose(2, 3)).transpose(2, 3)  # noqa: E731
        return fold(self.W_Q), fold(self.W_K), fold(self.W_V)

    def unembed_eff(self) -> Tensor:
        """W_U with the final norm scale folded in, [d_model, d_vocab]."""
        return self._center((self.W_U * self.lnf[:, None]).T).T

    # --- conversions --------------------------------------------------------------------
    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = torch.float32) -> "ModelWeights":
        conv = lambda t: None if t is None else t.detach().to(device=device, dtype=dtype)  # noqa: E731
        return replace(self, **{f: conv(getattr(self, f)) for f in _TENSORS})

    @classmethod
    def random(cls, n_layers: int = 2, d_model: int = 16, d_mlp: int = 24, n_heads: int = 4,
               d_head: int | None = None, d_vocab: int = 50, gated: bool = True,
               n_kv_heads: int | None = None, norm: str = "rms", seed: int = 0) -> "ModelWeights":
        """Random weights (norm scales around 1) for tests and benchmarks."""
        g = torch.Generator().manual_seed(seed)
        d_head = d_head or max(1, d_model // n_heads)
        n_kv = n_kv_heads or n_heads
        r = lambda *s: torch.randn(*s, generator=g) / s[-2] ** 0.5 if len(s) > 1 else torch.randn(*s, generator=g)  # noqa: E731
        scale = lambda *s: 0.5 + torch.rand(*s, generator=g)  # noqa: E731
        K, V = r(n_layers, n_kv, d_model, d_head), r(n_layers, n_kv, d_model, d_head)
        return cls(
            W_in=r(n_layers, d_model, d_mlp), W_out=r(n_layers, d_mlp, d_model),
            W_gate=r(n_layers, d_model, d_mlp) if gated else None,
            W_E=torch.randn(d_vocab, d_model, generator=g), W_U=r(d_model, d_vocab),
            W_Q=r(n_layers, n_heads, d_model, d_head),
            W_K=repeat_kv(K, n_heads), W_V=repeat_kv(V, n_heads),
            W_O=r(n_layers, n_heads, d_head, d_model),
            ln1=scale(n_layers, d_model), ln2=scale(n_layers, d_model), lnf=scale(d_model),
            norm=norm,
        )


_TENSORS = ("W_in", "W_out", "W_E", "W_U", "W_Q", "W_K", "W_V", "W_O", "ln1", "ln2", "lnf", "W_gate")


def repeat_kv(W: Tensor, n_heads: int) -> Tensor:
    """Grouped-query attention: [L, H_kv, ...] -> [L, H, ...]; query head h reads kv head
    h // (H / H_kv), as in Llama's ``repeat_kv``."""
    n_kv = W.shape[1]
    if n_kv == n_heads:
        return W
    if n_heads % n_kv:
        raise ValueError(f"{n_heads} query heads do not divide into {n_kv} key/value heads")
    return W.repeat_interleave(n_heads // n_kv, dim=1)


def _norm_scale(module: Any, d_model: int) -> Tensor:
    """A norm's scale vector; ones where the bridge folded it away or it has none."""
    w = getattr(module, "weight", None) if module is not None else None
    if w is None:
        w = getattr(module, "w", None) if module is not None else None
    if w is None:
        return torch.ones(d_model)
    return w.detach().float().reshape(-1)


def from_bridge(bridge: Any) -> ModelWeights:
    """Read a TransformerLens 4 ``TransformerBridge`` (or a HookedTransformer-like object
    with the same ``W_*`` accessors and ``blocks[l].ln1/ln2``, ``ln_final``)."""
    cfg = bridge.cfg
    with torch.no_grad():
        W_in = bridge.W_in.detach().float()
        L, d_model, _ = W_in.shape
        H = cfg.n_heads
        gate = bridge.W_gate if getattr(cfg, "gated_mlp", False) else None
        blocks = list(bridge.blocks)
        norm = str(getattr(cfg, "normalization_type", "RMS") or "RMS").upper()
        return ModelWeights(
            W_in=W_in, W_out=bridge.W_out.detach().float(),
            W_gate=None if gate is None else gate.detach().float(),
            W_E=bridge.W_E.detach().float(), W_U=bridge.W_U.detach().float(),
            W_Q=bridge.W_Q.detach().float(),
            W_K=repeat_kv(bridge.W_K.detach().float(), H),
            W_V=repeat_kv(bridge.W_V.detach().float(), H),
            W_O=bridge.W_O.detach().float(),
            ln1=torch.stack([_norm_scale(getattr(b, "ln1", None), d_model) for b in blocks]),
            ln2=torch.stack([_norm_scale(getattr(b, "ln2", None), d_model) for b in blocks]),
            lnf=_norm_scale(getattr(bridge, "ln_final", None), d_model),
            norm="ln" if norm.startswith("LN") else "rms",
        )


def model_weights(loaded: Any) -> ModelWeights:
    """The weights of a ``loaders.model.LoadedModel`` (anything with ``.bridge``)."""
    return from_bridge(loaded.bridge)
