"""Trimming leading and trailing silence."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def trim_silence(
    wave: np.ndarray, top_db: float = 60.0, frame_length: int = 2048, hop_length: int = 512
) -> np.ndarray:
    """Drop the leading and trailing frames more than ``top_db`` below the loudest frame.

    Frame k is centred on sample k·hop (the wave is zero-padded by frame_length/2 at both ends); its
    level is 10·log10(max(mean square, 1e-10)). With k0 and k1 the first and last frames within
    ``top_db`` of the loudest, the result is ``wave[k0·hop : min(T, (k1 + 1)·hop)]``: the same as
    ``librosa.effects.trim`` (an all-zero wave is kept whole), without its just-in-time compilation.
    """
    padded = np.pad(np.asarray(wave, dtype=np.float64), frame_length // 2)
    power = np.maximum(np.mean(sliding_window_view(padded, frame_length)[::hop_length] ** 2, axis=1), 1e-10)
    level = 10 * np.log10(power / power.max())
    loud = np.flatnonzero(level > -top_db)
    return wave[loud[0] * hop_length : min(len(wave), (loud[-1] + 1) * hop_length)]
