"""Frame-aligned pitch labels: F0 in Hz, a voiced flag and the voicing probability for every mel frame.

A preset's frame n is centred on sample n·hop + offset (``MelConfig.frame_offset``: hop/2 for "hifigan"
padding, 0 for "center"), and every tracker reports its estimate at exactly those instants, searching
F0 in the preset's [f0_min, f0_max]:

- ``"pyin"``: ``librosa.pyin`` (probabilistic YIN with Viterbi voicing) on the wave shifted by the
  offset, so that its centred frames fall on the mel's, with a window of at least 4 periods of f0_min.
  ``voiced`` is its Viterbi decision and ``voiced_prob`` its posterior voicing probability.
- ``"crepe"`` / ``"crepe-tiny"``: torchcrepe's full or tiny model (weights ship in the wheel) on the wave
  resampled to 16 kHz at a 10 ms hop. Log-F0 and periodicity are interpolated linearly onto the mel's
  centres; ``voiced_prob`` is the periodicity median-filtered over 3 frames, and ``voiced`` is where it
  exceeds 0.21, torchcrepe's recommended threshold.

F0 is 0 on unvoiced frames. ``benchmarks/bench_pitch_trackers.py`` measures the trackers against
signals of known F0 and against each other on real speech, and times them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import WavesynthError
from .features import MelConfig

TRACKERS = ("pyin", "crepe", "crepe-tiny")
CREPE_RATE, CREPE_HOP, CREPE_VOICING_THRESHOLD = 16000, 160, 0.21


@dataclass(frozen=True)
class PitchTrack:
    """Per-frame pitch of one utterance: ``f0`` in Hz (0 where unvoiced), ``voiced`` in {0, 1} and
    ``voiced_prob`` in [0, 1], each float32 (frames,). Stored in a feature cache as one (3, frames) array.

    >>> track = PitchTrack.from_array(np.array([[0.0, 120.0], [0.0, 1.0], [0.1, 0.9]], np.float32))
    >>> track.frames, float(track.f0[1]), track.to_array().shape
    (2, 120.0, (3, 2))
    """

    f0: np.ndarray
    voiced: np.ndarray
    voiced_prob: np.ndarray

    @property
    def frames(self) -> int:
        return len(self.f0)

    def to_array(self) -> np.ndarray:
        return np.stack([self.f0, self.voiced, self.voiced_prob]).astype(np.float32)

    @classmethod
    def from_array(cls, array: np.ndarray) -> PitchTrack:
        if array.ndim != 2 or array.shape[0] != 3:
            raise WavesynthError(f"a pitch track is a (3, frames) array, got shape {tuple(array.shape)}")
        f0, voiced, prob = (np.asarray(row, np.float32) for row in array)
        return cls(f0, voiced, prob)


def _voiced_track(f0: np.ndarray, voiced: np.ndarray, prob: np.ndarray) -> PitchTrack:
    voiced = voiced & np.isfinite(f0) & (f0 > 0)
    return PitchTrack(np.where(voiced, f0, 0.0).astype(np.float32), voiced.astype(np.float32),
                      np.clip(np.nan_to_num(prob), 0.0, 1.0).astype(np.float32))


def _pyin(wave: np.ndarray, config: MelConfig, frames: int) -> PitchTrack:
    import librosa

    frame_length = 2 ** math.ceil(math.log2(4 * config.sample_rate / config.f0_min))
    shifted = wave[round(config.frame_offset):]
    if len(shifted) < frame_length:  # pyin needs one whole window
        shifted = np.pad(shifted, (0, frame_length - len(shifted)))
    f0, voiced, prob = librosa.pyin(shifted, fmin=config.f0_min, fmax=config.f0_max, sr=config.sample_rate,
                                    frame_length=frame_length, hop_length=config.hop_length, center=True)
    return _voiced_track(f0[:frames], voiced[:frames], prob[:frames])


def _crepe(wave: np.ndarray, config: MelConfig, frames: int, model: str) -> PitchTrack:
    import torch
    import torchaudio.functional

    try:
        import torchcrepe
    except ImportError:
        raise WavesynthError("the CREPE pitch trackers need torchcrepe (not installed): pip install "
                             "'wavesynth[crepe]'") from None

    audio = torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None]
    if config.sample_rate != CREPE_RATE:
        audio = torchaudio.functional.resample(audio, config.sample_rate, CREPE_RATE)
    with torch.no_grad():
        f0, periodicity = torchcrepe.predict(audio, CREPE_RATE, CREPE_HOP, config.f0_min, config.f0_max,
                                             model, return_periodicity=True, batch_size=512, device="cpu")
        periodicity = torchcrepe.filter.median(periodicity, 3)
    f0, periodicity = f0[0].double().numpy(), periodicity[0].double().numpy()
    crepe_times = np.arange(len(f0)) * CREPE_HOP / CREPE_RATE
    times = (np.arange(frames) * config.hop_length + config.frame_offset) / config.sample_rate
    f0 = np.exp(np.interp(times, crepe_times, np.log(np.maximum(f0, 1e-3))))
    prob = np.interp(times, crepe_times, periodicity)
    return _voiced_track(f0, prob > CREPE_VOICING_THRESHOLD, prob)


def track_pitch(wave: np.ndarray, config: MelConfig, tracker: str = "pyin") -> PitchTrack:
    """The pitch of ``wave`` (T,) at the centres of ``config``'s frames (ceil(T / hop) of them), by
    ``tracker`` (one of :data:`TRACKERS`; see the module docstring).

    >>> from wavesynth.audio import get_preset
    >>> config = get_preset("hifigan-22k")
    >>> t = np.arange(22050) / 22050
    >>> track = track_pitch((0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), config)
    >>> track.frames, abs(float(np.median(track.f0[track.voiced > 0])) - 200) < 2  # pyin's grid: ~200.6 Hz
    (87, True)
    """
    if tracker not in TRACKERS:
        raise WavesynthError(f"unknown pitch tracker {tracker!r} (known: {', '.join(TRACKERS)})")
    wave = np.asarray(wave, np.float32)
    if wave.ndim != 1:
        raise WavesynthError(f"track_pitch needs a mono wave (T,), got shape {tuple(wave.shape)}")
    frames = config.frames(len(wave))
    wave = np.pad(wave, (0, frames * config.hop_length - len(wave)))  # as the mel's zero padding
    if tracker == "pyin":
        return _pyin(wave, config, frames)
    return _crepe(wave, config, frames, "tiny" if tracker == "crepe-tiny" else "full")
