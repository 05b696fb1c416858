from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wavesynth.audio import preprocess

# The suite's models are tiny: one intra-op thread is faster than several, and on a shared or 2-core machine
# several threads stall each other (5-100x slower measured here). Subprocess tests set their own.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A hifigan-22k feature cache of six short noisy chirps (two in the validation split)."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    for i in range(6):
        t = np.arange(int(22050 * 0.3)) / 22050
        wave = 0.3 * np.sin(2 * np.pi * (300 + 100 * i + 2000 * t) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(root / f"u{i}.wav", wave.astype(np.float32), 22050)
    out = tmp_path_factory.mktemp("cache")
    preprocess("folder", root, out, "hifigan-22k", trim_db=None, valid_fraction=0.34, progress=False,
               workers=1)
    return out
