"""Reading and writing audio files.

Waveforms are float32 numpy arrays in [-1, 1] of shape ``(T,)``. Files are read through soundfile
(libsndfile), which recognises the format from the file's header: wav (PCM 16/24/32, float), FLAC, OGG
Vorbis/Opus, AIFF and, with libsndfile >= 1.1, MP3. Resampling uses soxr (``soxr_hq``) through librosa.
"""

from __future__ import annotations

import os
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from ..errors import MissingFileError, WavesynthError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au")


def load_audio(path: str | os.PathLike, sample_rate: int | None = None, min_samples: int = 1) -> np.ndarray:
    """Read ``path`` as a mono float32 waveform in [-1, 1], resampled to ``sample_rate`` if given.

    Channels are averaged. PCM is scaled by 2^-(bits-1); a float file must already lie in [-1, 1].
    After resampling (which may overshoot a full-scale signal slightly) samples are clipped to [-1, 1].
    Raises FileNotFoundError for a missing file or a broken link, and ValueError, naming the file, for one
    that is not audio, is empty, holds non-finite samples, lies outside [-1, 1], or has fewer than
    ``min_samples`` samples at the requested rate.
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise MissingFileError(f"{path}: broken symbolic link (to {os.readlink(path)})")
    if not path.is_file():
        raise MissingFileError(f"{path}: no such audio file")
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise WavesynthError(
            f"{path}: unsupported file type '{path.suffix}' (expected {', '.join(AUDIO_EXTENSIONS)})"
        )
    try:
        wave, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise WavesynthError(f"{path}: not a readable audio file ({error})") from None
    if wave.shape[0] == 0:
        raise WavesynthError(f"{path}: the file holds no samples")
    wave = wave.mean(axis=1, dtype=np.float32)
    if not np.isfinite(wave).all():
        raise WavesynthError(f"{path}: the file holds NaN or infinite samples")
    peak = float(np.abs(wave).max())
    if peak > 1.0:
        raise WavesynthError(f"{path}: samples exceed [-1, 1] (peak {peak:.3g}); rescale the file")
    if sample_rate is not None and rate != sample_rate:
        wave = librosa.resample(wave, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
        wave = np.clip(wave, -1.0, 1.0).astype(np.float32, copy=False)
    if wave.shape[0] < min_samples:
        rate = sample_rate or rate
        raise WavesynthError(
            f"{path}: too short ({wave.shape[0]} samples at {rate} Hz, at least {min_samples} needed)"
        )
    return wave


def save_audio(path: str | os.PathLike, wave: np.ndarray, sample_rate: int) -> None:
    """Write a mono waveform in [-1, 1] (numpy or torch, shape ``(T,)``); the format follows the suffix
    (16-bit PCM for .wav, FLAC's default for .flac). Raises ValueError for a non-finite or 2-D wave."""
    path = Path(path)
    wave = np.asarray(wave.detach().cpu() if hasattr(wave, "detach") else wave, dtype=np.float32)
    if wave.ndim != 1:
        raise WavesynthError(f"{path}: expected a mono waveform of shape (T,), got shape {wave.shape}")
    if not np.isfinite(wave).all():
        raise WavesynthError(f"{path}: refusing to write NaN or infinite samples")
    subtype = "PCM_16" if path.suffix.lower() == ".wav" else None
    sf.write(path, np.clip(wave, -1.0, 1.0), sample_rate, subtype=subtype)
