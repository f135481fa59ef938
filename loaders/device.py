"""Where and in what precision the model runs: ``--device auto|cpu|cuda[:i]|mps`` and ``--dtype``.

    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_dtype("bf16")
    torch.bfloat16

``auto`` takes a GPU when one is present (CUDA, then Apple's MPS), else the CPU. A device asked
for by name that is not there is an error (:class:`DeviceError`), never a silent fall back to
the CPU: a build someone sized for a GPU must not quietly run for days on a CPU.
"""

from __future__ import annotations

import torch

from neurograph.errors import NeuroGraphError

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16, "half": torch.float16}


class DeviceError(NeuroGraphError):
    """A device or precision that was asked for and is not available."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The torch device for ``spec`` (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``)."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = spec.partition(":")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            built = torch.version.cuda
            why = "this torch has no CUDA support (a CPU build)" if not built else "no CUDA device is visible"
            raise DeviceError(f"--device {spec} was asked for but {why}; use --device cpu or auto")
        if index:
            if not index.isdigit() or int(index) >= torch.cuda.device_count():
                raise DeviceError(f"--device {spec}: there are {torch.cuda.device_count()} CUDA devices "
                                  f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
        return torch.device(spec)
    if kind == "mps":
        if not _mps_available():
            raise DeviceError(f"--device {spec} was asked for but Apple's MPS is not available here; "
                              "use --device cpu or auto")
        return torch.device("mps")
    raise DeviceError(f"unknown device {spec!r}: choose from {', '.join(DEVICES)} (or cuda:N)")


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX or AVX-512 BF16; measured on such a
    CPU: a SmolLM2 forward pass 4x faster than in float32)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_dtype(spec: str | torch.dtype | None = "float32", device: torch.device | None = None) -> torch.dtype:
    """The torch dtype for ``spec`` (float32, bfloat16, float16 and their short names; ``auto``:
    bfloat16 on a GPU or a CPU with hardware bfloat16, else float32)."""
    if isinstance(spec, torch.dtype):
        return spec
    key = (spec or "float32").strip().lower().removeprefix("torch.")
    if key == "auto":
        dev = device if device is not None else torch.device("cpu")
        fast = dev.type != "cpu" or cpu_has_fast_bf16()
        return torch.bfloat16 if fast else torch.float32
    if key not in DTYPES:
        raise DeviceError(f"unknown dtype {spec!r}: choose from float32, bfloat16, float16, auto")
    return DTYPES[key]


def check_pair(device: torch.device, dtype: torch.dtype) -> None:
    """Refuse a precision the device cannot run (float16 matmuls on a CPU are not supported by
    every torch build and are slow where they are: use bfloat16 there)."""
    if device.type == "cpu" and dtype == torch.float16:
        raise DeviceError("--dtype float16 on the CPU: use bfloat16 (fast on CPUs with AMX/AVX-512 BF16) or float32")
