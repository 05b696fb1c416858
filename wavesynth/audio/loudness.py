"""Integrated loudness (ITU-R BS.1770-4, mono) and loudness normalisation.

K-weighting is a high shelf (+4 dB above ~1.5 kHz) followed by a high-pass at ~38 Hz, designed for any
sample rate so that at 48 kHz they are the standard's coefficients. The filtered signal is cut into
400 ms blocks every 100 ms; block loudness l_j = -0.691 + 10·log10(mean square). Blocks below -70 LUFS
are dropped (absolute gate), then blocks more than 10 LU below the mean of the rest (relative gate);
the integrated loudness is -0.691 + 10·log10 of the mean square over the blocks left.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter


def k_weighting(rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two K-weighting biquads (b, a) for ``rate``: the analogue prototypes behind BS.1770's 48 kHz
    coefficients (as in libebur128), mapped with the bilinear transform, K = tan(π·f0 / rate)."""
    k = math.tan(math.pi * 1681.974450955533 / rate)
    q = 0.7071752369554196
    vh = 10 ** (3.999843853973347 / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf_b = np.array([vh + vb * k / q + k * k, 2 * (k * k - vh), vh - vb * k / q + k * k]) / a0
    shelf_a = np.array([a0, 2 * (k * k - 1), 1 - k / q + k * k]) / a0
    k = math.tan(math.pi * 38.13547087602444 / rate)
    q = 0.5003270373238773
    a0 = 1 + k / q + k * k
    pass_a = np.array([a0, 2 * (k * k - 1), 1 - k / q + k * k]) / a0
    return [(shelf_b, shelf_a), (np.array([1.0, -2.0, 1.0]), pass_a)]


def integrated_loudness(wave: np.ndarray, rate: int) -> float:
    """Gated loudness of a mono waveform in LUFS; -inf for silence. A signal shorter than one 400 ms
    block is measured as a single block."""
    x = np.asarray(wave, dtype=np.float64)
    for b, a in k_weighting(rate):
        x = lfilter(b, a, x)
    block, step = round(0.4 * rate), round(0.1 * rate)
    if len(x) <= block:
        power = np.array([np.mean(x**2)])
    else:
        starts = np.arange(0, len(x) - block + 1, step)
        cumulative = np.concatenate([[0.0], np.cumsum(x**2)])
        power = (cumulative[starts + block] - cumulative[starts]) / block
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10 * np.log10(power)
    gated = power[loudness > -70.0]
    if gated.size == 0:
        return -math.inf
    relative = -0.691 + 10 * math.log10(gated.mean()) - 10.0
    gated = power[(loudness > -70.0) & (loudness > relative)]
    return -0.691 + 10 * math.log10(gated.mean())


def normalize_loudness(
    wave: np.ndarray, rate: int, target_lufs: float, peak_limit: float = 0.99
) -> np.ndarray:
    """Scale ``wave`` to ``target_lufs`` integrated loudness, but never past a peak of ``peak_limit``
    (the gain is lowered instead of clipping). Silence is returned unchanged."""
    loudness = integrated_loudness(wave, rate)
    peak = float(np.abs(wave).max(initial=0.0))
    if not math.isfinite(loudness) or peak == 0.0:
        return wave
    gain = min(10 ** ((target_lufs - loudness) / 20), peak_limit / peak)
    return (wave * gain).astype(np.float32)
