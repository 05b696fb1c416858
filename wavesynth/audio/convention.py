"""Does a mel-spectrogram look like a preset's feature convention? Guesses a caller's mistake (dB, log10, a
normalised mel, another preset's floor) from the values alone, for a warning before synthesis."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from .features import MelConfig, mel_filterbank


def expected_range(config: MelConfig) -> tuple[float, float]:
    """Lowest and highest un-normalised log-mel the preset can produce: the log floor, and the log of the
    largest filterbank row sum times the window sum (a full-scale input's bound on every STFT bin)."""
    log = np.log if config.log == "ln" else np.log10
    top = mel_filterbank(config).sum(1).max() * np.hanning(config.win_length + 1)[:-1].sum()
    return float(log(config.log_floor)), float(log(top))


def convention_warning(mel: Tensor, config: MelConfig) -> str | None:
    """Why ``mel`` (n_mels, frames) looks like another feature convention than ``config``'s, or None.

    Checks, in turn: a mean far from 0 for a normalising preset; for the others, per-bin mean ≈ 0 and
    std ≈ 1 (a normalised mel, over 20 frames or more); values outside the preset's range; a clamp floor
    (at least 0.1 % of the values, and 8 of them, equal to the minimum) at another level than the
    preset's; a minimum above half the floor (a compressed scale, e.g. log10 for ln: speech always has
    quiet bins).

    >>> import torch
    >>> from wavesynth.audio import get_preset
    >>> preset = get_preset("hifigan-22k")
    >>> [round(value, 2) for value in expected_range(preset)]
    [-11.51, 3.23]
    >>> convention_warning(torch.full((80, 4), -100.0), preset).split(":")[0]  # e.g. dB
    'mel values lie in [-100.00, -100.00], outside [-11.51, 3.23]'
    >>> convention_warning(torch.linspace(-11.5, 2.0, 800).reshape(80, 10), preset) is None
    True
    """
    mel = mel.double()
    low, high = float(mel.min()), float(mel.max())
    unit = "ln" if config.log == "ln" else "log10"
    expects = f"preset {config.name!r} expects {unit} of a mel magnitude clamped at {config.log_floor:g}"
    if config.normalize:
        mean = float(mel.mean())
        if abs(mean) > 2.0:
            return (f"mel has mean {mean:.2f}, but preset {config.name!r} expects mean-variance normalised "
                    f"features (mean ≈ 0): pass the mel from Vocoder.mel()")
        return None
    if mel.shape[1] >= 20:
        means, stds = mel.mean(1), mel.std(1)
        if float(means.abs().max()) < 0.5 and float(((stds - 1).abs() < 0.5).double().mean()) > 0.9:
            return f"mel looks mean-variance normalised, but {expects} (un-normalised)"
    floor, top = expected_range(config)
    if low < floor - 0.5 or high > top + 0.5:
        return (f"mel values lie in [{low:.2f}, {high:.2f}], outside [{floor:.2f}, {top:.2f}]: {expects} "
                f"(is it dB, log10 or another preset's mel?)")
    at_min = int((mel <= low + 1e-4).sum())
    if at_min >= max(8, mel.numel() // 1000) and abs(low - floor) > 0.5:
        return f"mel is clamped at {low:.2f}, but {expects} (= {floor:.2f}): is it another preset's mel?"
    if low > floor / 2:
        return (f"mel never goes below {low:.2f}, while speech in this convention reaches towards "
                f"{floor:.2f}: {expects} (is it log10 or another preset's mel?)")
    return None
