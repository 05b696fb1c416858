"""Timing shared by the benchmarks: interleaved rounds, so background load hits every contender alike, and
the dense-matmul rate at each precision that sets the benchmarks' floors."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def interleaved_seconds(
    fns: dict[str, Callable[[], object]], repeats: int, synchronize: Callable[[], object] = lambda: None
) -> dict[str, float]:
    """Median wall time of each fn() over ``repeats`` rounds that call every fn once, after a warm-up;
    ``synchronize`` (``torch.cuda.synchronize`` on a GPU) runs before each clock read."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            synchronize()
            start = time.perf_counter()
            fn()
            synchronize()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


#: The dense-matmul size whose rate sets each precision's floor.
MATMUL_SIZE = 1024

#: Precision name -> the dtype its matmuls multiply in (bf16 autocast runs matmuls in bfloat16).
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_calls(
    device: torch.device | str, precisions: list[str], n: int = MATMUL_SIZE
) -> dict[str, Callable[[], object]]:
    """One n×n torch.matmul per precision, named "matmul fp32", "matmul bf16", ..., to time in the same
    interleaved rounds as the contenders (so background load hits the floors alike)."""
    calls = {}
    for precision in precisions:
        a, b = (torch.randn(n, n, device=device, dtype=DTYPES[precision]) for _ in range(2))
        calls[f"matmul {precision}"] = lambda a=a, b=b: torch.matmul(a, b)
    return calls


def matmul_rate(seconds: dict[str, float], precision: str, n: int = MATMUL_SIZE) -> float:
    """FLOP/s of the n×n matmul at ``precision``, from the times ``interleaved_seconds`` returned."""
    return 2 * n**3 / seconds[f"matmul {precision}"]


def runnable(fn: Callable[[], object]) -> str | None:
    """None if ``fn()`` runs, else the first line of its error."""
    try:
        fn()
    except (RuntimeError, TypeError, ValueError) as error:
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    return None
