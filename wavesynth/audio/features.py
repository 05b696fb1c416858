"""Log-mel features: ``MelConfig``, the named presets, and batched extraction in torch.

For a waveform of T samples, extraction does exactly this:

1. pad the end with zeros to T' = ceil(T / hop) * hop samples;
2. reflect-pad both ends by ``pad`` samples, where ``pad = (n_fft - hop) / 2`` for ``padding="hifigan"``
   (HiFi-GAN's meldataset.py) and ``pad = n_fft / 2`` for ``padding="center"`` (librosa/torchaudio
   ``center=True``);
3. STFT without further padding, periodic Hann window of ``win_length`` centred in ``n_fft``;
   for ``"center"`` the last frame (centred on sample T', past the end) is dropped;
4. magnitude |X| = sqrt(Re² + Im² + mag_eps), mel = M |X| with the slaney-scale, slaney-normalised
   filterbank M of ``librosa.filters.mel``;
5. log: ln or log10 of max(mel, log_floor);
6. for presets with ``normalize=True``, (log-mel - mean) / std with corpus statistics (``MelStats``).

So ``frames = T' / hop`` and ``frames * hop_length == T'`` always. Frame t is centred on sample
t·hop + hop/2 (``"hifigan"``) or t·hop (``"center"``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WavesynthError
from .stats import MelStats

PADDINGS = ("hifigan", "center")
LOGS = ("ln", "log10")


@dataclass(frozen=True)
class MelConfig:
    """Everything that defines a feature: a model stores it and always extracts the features it was
    trained on. See the module docstring for the exact computation."""

    name: str
    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float
    fmax: float
    padding: str = "hifigan"
    mag_eps: float = 0.0
    log: str = "ln"
    log_floor: float = 1e-5
    normalize: bool = False
    f0_min: float = 55.0  # the range the pitch tracker searches (Hz)
    f0_max: float = 550.0

    def __post_init__(self) -> None:
        for field in ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) <= 0:
                raise WavesynthError(f"MelConfig {self.name!r}: {field} must be a positive integer")
        if self.win_length > self.n_fft:
            raise WavesynthError(f"MelConfig {self.name!r}: win_length {self.win_length} > n_fft "
                                 f"{self.n_fft}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise WavesynthError(f"MelConfig {self.name!r}: need 0 <= fmin < fmax <= sample_rate / 2")
        if self.padding not in PADDINGS:
            raise WavesynthError(f"MelConfig {self.name!r}: padding must be one of {PADDINGS}")
        if self.padding == "hifigan" and (self.n_fft - self.hop_length) % 2:
            raise WavesynthError(f"MelConfig {self.name!r}: 'hifigan' padding needs n_fft - hop_length even")
        if self.log not in LOGS:
            raise WavesynthError(f"MelConfig {self.name!r}: log must be one of {LOGS}")
        if self.log_floor <= 0 or self.mag_eps < 0:
            raise WavesynthError(f"MelConfig {self.name!r}: log_floor must be > 0 and mag_eps >= 0")
        if not 0 < self.f0_min < self.f0_max < self.sample_rate / 2:
            raise WavesynthError(f"MelConfig {self.name!r}: need 0 < f0_min < f0_max < sample_rate / 2")

    @property
    def reflect_pad(self) -> int:
        """Samples reflected onto each end before the STFT."""
        extra = self.hop_length if self.padding == "hifigan" else 0
        return (self.n_fft - extra) // 2

    @property
    def frame_offset(self) -> float:
        """The sample frame 0 is centred on (frame n on n·hop + frame_offset)."""
        return self.hop_length / 2 if self.padding == "hifigan" else 0.0

    @property
    def min_samples(self) -> int:
        """The shortest waveform that can be analysed: reflect padding needs T' > reflect_pad."""
        return (self.reflect_pad // self.hop_length + 1) * self.hop_length

    def frames(self, samples: int) -> int:
        """Number of mel frames for a waveform of ``samples`` samples: ceil(samples / hop)."""
        return math.ceil(samples / self.hop_length)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MelConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise WavesynthError(f"MelConfig: unknown fields {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


_LJ = dict(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80)

PRESETS: dict[str, MelConfig] = {
    # HiFi-GAN (jik876/hifi-gan config_v1.json + meldataset.py) and NVIDIA Tacotron 2 on LJSpeech:
    # sqrt(|X|² + 1e-9), reflect padding (n_fft - hop) / 2, center=False, ln(clamp(mel, 1e-5)).
    "hifigan-22k": MelConfig("hifigan-22k", **_LJ, fmin=0.0, fmax=8000.0, padding="hifigan", mag_eps=1e-9),
    # ParallelWaveGAN egs/ljspeech/voc1 (parallel_wavegan.v1.yaml + bin/preprocess.py): librosa.stft
    # centred with reflect padding, |X|, 80-7600 Hz, log10(max(mel, 1e-10)), then per-bin mean-variance
    # normalisation with statistics of the training set.
    "pwg-22k": MelConfig(
        "pwg-22k",
        **_LJ,
        fmin=80.0,
        fmax=7600.0,
        padding="center",
        log="log10",
        log_floor=1e-10,
        normalize=True,
    ),
    # SpeechBrain HiFi-GAN LibriTTS 16 kHz (tts-hifigan-libritts-16kHz: torchaudio MelSpectrogram with
    # its defaults center=True, reflect; power 1; slaney; ln(clamp(mel, 1e-5))). Hop 256 (16 ms) keeps
    # the 4·4·4·4 upsampler of the 22 kHz presets and matches SpeechBrain's 16 kHz TTS front-ends.
    "speechbrain-16k": MelConfig(
        "speechbrain-16k", 16000, 1024, 256, 1024, 80, fmin=0.0, fmax=8000.0, padding="center"
    ),
}


#: The preset a config uses when it names none: the 22.05 kHz HiFi-GAN / Tacotron 2 convention.
DEFAULT_PRESET = "hifigan-22k"


def model_from_preset(data: Mapping[str, Any], keys: tuple[str, ...] = ("n_mels", "hop_length")
                      ) -> Mapping[str, Any]:
    """A task config's tables with the ``[model]`` settings ``keys`` taken from ``data.preset`` where
    ``[model]`` leaves them out: the preset fixes them, so a recipe need not restate them (a task config's
    ``upgrade`` hook, applied before the config is built)."""
    tables = {key: data.get(key, {}) for key in ("data", "model")}
    if not all(isinstance(table, Mapping) for table in tables.values()):
        return data  # not tables: from_dict says so
    mel = get_preset(tables["data"].get("preset", DEFAULT_PRESET))
    return {**data, "model": {**{key: getattr(mel, key) for key in keys}, **tables["model"]}}


def get_preset(name: str) -> MelConfig:
    """The preset called ``name``; ValueError listing the known names otherwise."""
    if name not in PRESETS:
        raise WavesynthError(f"unknown feature preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]


@lru_cache(maxsize=8)
def mel_filterbank(config: MelConfig) -> np.ndarray:
    """The (n_mels, n_fft // 2 + 1) slaney filterbank of ``librosa.filters.mel`` in float64."""
    return librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=config.n_fft,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
        htk=False,
        norm="slaney",
        dtype=np.float64,
    )


def pad_to_hop(wave: torch.Tensor | np.ndarray, hop_length: int):
    """Zero-pad the last axis to the next multiple of ``hop_length`` (numpy or torch in, same out)."""
    extra = -wave.shape[-1] % hop_length
    if extra == 0:
        return wave
    if isinstance(wave, np.ndarray):
        return np.pad(wave, [(0, 0)] * (wave.ndim - 1) + [(0, extra)])
    return F.pad(wave, (0, extra))


class MelExtractor(nn.Module):
    """Batched log-mel extraction for one ``MelConfig`` on any device.

    ``forward(wave)`` takes ``(T,)`` or ``(batch, T)`` float audio and returns ``(n_mels, frames)`` or
    ``(batch, n_mels, frames)`` with ``frames = ceil(T / hop)``, normalised when the preset says so
    (then ``stats`` is required). ``log_mel`` is the same without normalisation.
    """

    def __init__(self, config: MelConfig, stats: MelStats | None = None) -> None:
        super().__init__()
        self.config = config
        # float64, cast to the input's dtype on use, so a float64 input is exact to float64 precision
        self.register_buffer("filterbank", torch.from_numpy(mel_filterbank(config)), persistent=False)
        window = torch.hann_window(config.win_length, dtype=torch.float64)
        self.register_buffer("window", window, persistent=False)
        if stats is not None:
            if stats.mean.shape != (config.n_mels,):
                raise WavesynthError(f"statistics have {stats.mean.shape[0]} bins, preset has "
                                     f"{config.n_mels}")
            self.register_buffer("mean", torch.from_numpy(stats.mean).float()[:, None], persistent=False)
            self.register_buffer("std", torch.from_numpy(stats.std).float()[:, None], persistent=False)
        self.has_stats = stats is not None

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Un-normalised log-mel (steps 1-5 of the module docstring)."""
        c = self.config
        if wave.ndim not in (1, 2) or not wave.is_floating_point():
            raise WavesynthError(
                f"expected a float waveform of shape (T,) or (batch, T), got {tuple(wave.shape)}"
            )
        if wave.shape[-1] < c.min_samples:
            raise WavesynthError(
                f"waveform of {wave.shape[-1]} samples is too short for preset {c.name!r} "
                f"(at least {c.min_samples})"
            )
        x = pad_to_hop(wave.reshape(-1, wave.shape[-1]), c.hop_length)
        x = F.pad(x.unsqueeze(1), (c.reflect_pad, c.reflect_pad), mode="reflect").squeeze(1)
        spec = torch.stft(
            x, c.n_fft, c.hop_length, c.win_length, self.window.to(x.dtype), center=False, return_complex=True
        )
        magnitude = torch.sqrt(spec.real.square() + spec.imag.square() + c.mag_eps)
        if c.padding == "center":
            magnitude = magnitude[..., :-1]
        mel = torch.matmul(self.filterbank.to(x.dtype), magnitude).clamp_min(c.log_floor)
        out = torch.log(mel) if c.log == "ln" else torch.log10(mel)
        return out.reshape(*wave.shape[:-1], c.n_mels, out.shape[-1])

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        out = self.log_mel(wave)
        if self.config.normalize:
            if not self.has_stats:
                raise WavesynthError(f"preset {self.config.name!r} normalises features: pass corpus "
                                     "statistics")
            out = (out - self.mean.to(out.dtype)) / self.std.to(out.dtype)
        return out
