"""Random-number-generator state (torch, CUDA, numpy, python) as tensors and plain values.

The state is kept in a form that ``torch.load(weights_only=True)`` reads back, so a checkpoint can hold it.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """The state of every generator the training loop may draw from."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "cached_gaussian": cached},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state from :func:`get_rng_state`; CUDA states only if the device count matches."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Run a block with freshly seeded generators and restore the previous states afterwards."""
    state = get_rng_state()
    seed_everything(seed)
    try:
        yield
    finally:
        set_rng_state(state)
