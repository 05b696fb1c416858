"""Timing shared by the benchmarks: interleaved rounds, so background load hits every contender alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


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
