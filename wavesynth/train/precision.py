"""Training precision: ``train.precision = "fp32" | "bf16" | "auto"`` and the autocast that implements it.

bf16 is autocast (``torch.autocast(device_type, dtype=torch.bfloat16)``) on CPU or CUDA: the matmuls and
convolutions run in bf16 while the weights, gradients and optimiser states stay float32. The numerically
delicate parts (output heads' log-probabilities, log-determinants, entropies, KL terms, STFT and mel
losses) compute in float32 inside autocast: see ``wavesynth.flows.base.full_precision``.

"auto" is bf16 where the hardware has native bf16 arithmetic (``native_bf16``), else fp32: emulated bf16
(e.g. on an AVX2 CPU, measured 50-80x slower than fp32 for a 1024² matmul) gains nothing.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from pathlib import Path

import torch

from ..errors import WavesynthError

#: The precisions a run trains in (what ``resolve_precision`` returns).
PRECISIONS = ("fp32", "bf16")

#: The values ``train.precision`` (and ``resolve_precision``) accept.
PRECISION_CHOICES = ("auto", *PRECISIONS)

#: CPU feature flags that mean native bf16 arithmetic (x86: AVX512-BF16 dot products or AMX-BF16 tiles;
#: aarch64: the ARMv8.6 BF16 instructions).
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16", "svebf16")

_CPUINFO = Path("/proc/cpuinfo")


def _device(device: torch.device | str) -> torch.device:
    return torch.device(device)


def _torch_cpu_capabilities() -> dict[str, object] | None:
    """torch's own CPU feature detection (its bundled cpuinfo library), or None where it is missing."""
    get = getattr(torch.cpu, "get_capabilities", None)
    try:
        return dict(get()) if get is not None else None
    except Exception:  # an unexpected failure falls back to /proc/cpuinfo
        return None


def _proc_cpuinfo_flags() -> set[str] | None:
    """The feature flags of the first CPU in /proc/cpuinfo (x86 ``flags``, aarch64 ``Features``)."""
    try:
        text = _CPUINFO.read_text()
    except OSError:
        return None
    match = re.search(r"^(?:flags|Features)\s*:(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else None


@cache
def _cpu_bf16() -> tuple[bool, str]:
    """(native, how it was found) for this machine's CPU."""
    capabilities = _torch_cpu_capabilities()
    if capabilities is not None:
        found = [name for name in ("avx512_bf16", "amx_bf16") if capabilities.get(name)]
        if found:
            return True, f"torch.cpu.get_capabilities() has {' and '.join(found)}"
    flags = _proc_cpuinfo_flags()
    if flags is not None:
        found = [name for name in CPU_BF16_FLAGS if name in flags]
        if found:
            return True, f"/proc/cpuinfo flags have {' and '.join(found)}"
    sources = [name for name, seen in (("torch.cpu.get_capabilities()", capabilities is not None),
                                       ("/proc/cpuinfo flags", flags is not None)) if seen]
    return False, (f"no avx512_bf16 or amx_bf16 in {' or '.join(sources) or 'any CPU feature list'}; "
                   f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}")


def bf16_support(device: torch.device | str) -> tuple[bool, str]:
    """(whether ``device`` has native bf16, a short reason naming how that was found)."""
    device = _device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False, "CUDA is not available"
        if torch.version.hip:
            return True, "ROCm GPU"
        major, minor = torch.cuda.get_device_capability(device)
        native = major >= 8  # Ampere and later: bf16 tensor cores
        return native, f"compute capability {major}.{minor} ({'>=' if native else '<'} 8.0)"
    if device.type == "cpu":
        return _cpu_bf16()
    return False, f"bf16 autocast is not supported on {device.type}"


def native_bf16(device: torch.device | str) -> bool:
    """True if ``device`` does bf16 arithmetic in hardware (so bf16 autocast is faster than fp32).

    CUDA: compute capability >= 8.0 (what ``torch.cuda.is_bf16_supported(including_emulation=False)`` checks,
    but for ``device`` rather than the current device); any ROCm GPU. CPU: ``avx512_bf16`` or ``amx_bf16``
    in ``torch.cpu.get_capabilities()`` (torch's bundled cpuinfo, any OS), else one of ``CPU_BF16_FLAGS``
    in the first ``flags``/``Features`` line of /proc/cpuinfo. (``torch.backends.cpu.get_cpu_capability()``
    only says DEFAULT/AVX2/AVX512/...: it has no bf16 level, so it is only reported.) Other devices: False.
    """
    return bf16_support(device)[0]


def check_precision(name: str) -> str:
    """``name`` if it is one of ``PRECISION_CHOICES``, else a one-line ValueError."""
    if name not in PRECISION_CHOICES:
        raise WavesynthError(f"unknown precision {name!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    return name


def resolve_precision(name: str, device: torch.device | str) -> str:
    """"fp32" or "bf16" for ``name`` ("auto", "fp32" or "bf16") on ``device``: auto is bf16 only where
    ``native_bf16(device)``. Anything else is a one-line ValueError."""
    check_precision(name)
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "bf16" and _device(device).type not in ("cpu", "cuda"):
        raise WavesynthError(f"bf16 autocast runs on cpu and cuda, not {_device(device).type}")
    return name


def describe_precision(name: str, device: torch.device | str) -> str:
    """One line for the run log: the resolved precision, what was asked for, and why."""
    resolved = resolve_precision(name, device)
    native, why = bf16_support(device)
    device = _device(device)
    if name == "auto":
        verdict = "native bf16" if native else "no native bf16"
        return f"precision {resolved} (train.precision = auto; {device}: {verdict}: {why})"
    if resolved == "bf16" and not native:
        return (f"precision bf16 (train.precision = bf16; {device} has no native bf16 ({why}): it is "
                "emulated and slower than fp32)")
    return f"precision {resolved} (train.precision = {name})"


def autocast(precision: str, device: torch.device | str) -> AbstractContextManager:
    """The context a forward pass runs in: bf16 autocast (``torch.autocast(device.type, torch.bfloat16)``)
    on cpu or cuda for "bf16", a null context for "fp32"; "auto" is resolved first (``resolve_precision``)."""
    if resolve_precision(precision, device) == "fp32":
        return nullcontext()
    return torch.autocast(_device(device).type, dtype=torch.bfloat16)


__all__ = [
    "CPU_BF16_FLAGS",
    "PRECISIONS",
    "PRECISION_CHOICES",
    "autocast",
    "bf16_support",
    "check_precision",
    "describe_precision",
    "native_bf16",
    "resolve_precision",
]
