"""Training plumbing shared by the audio models' tasks (teacher, student): the ``[data]`` table of crops cut
from feature caches, the check that a model fits its preset, and ``AudioTask``, which reads the crops (with
F0 labels and the sine excitation for a pitch-aware model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from .audio import DEFAULT_PRESET, SegmentDataset, get_preset
from .errors import WavesynthError
from .pitch.excitation import SineExcitation
from .train import Task


class AudioModelConfig(Protocol):
    """What the plumbing reads from a model config (``WaveNetConfig``, ``StudentConfig``)."""

    n_mels: int
    hop_length: int
    harmonics: int

    @property
    def excitation_channels(self) -> int: ...


def check_model_fits_preset(model: AudioModelConfig, preset: str) -> None:
    """WavesynthError unless the model's ``n_mels`` and ``hop_length`` are those of mel preset ``preset``."""
    mel = get_preset(preset)
    if (model.n_mels, model.hop_length) != (mel.n_mels, mel.hop_length):
        raise WavesynthError(f"model.n_mels, model.hop_length = {model.n_mels}, {model.hop_length} must "
                             f"match preset {mel.name!r} ({mel.n_mels}, {mel.hop_length})")


@dataclass
class AudioDataConfig:
    """Where the training audio is and how it is cut (the ``[data]`` table)."""

    caches: list[str] = field(default_factory=lambda: ["cache/ljspeech-22k"])  # `wavesynth preprocess` out
    preset: str = DEFAULT_PRESET  # the mel preset every cache must have been made with
    segment_frames: int = 32  # training crop, in mel frames (× hop_length samples)
    val_segment_frames: int = 128  # fixed held-out crops for the validation loss
    samples: int = 2  # held-out utterances turned into audio at each validation (0: none)
    sample_seconds: float = 1.0  # length of each generated sample

    def __post_init__(self) -> None:
        get_preset(self.preset)
        if not self.caches:
            raise WavesynthError("caches must name at least one feature cache")
        for name in ("segment_frames", "val_segment_frames"):
            if getattr(self, name) < 1:
                raise WavesynthError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.samples < 0 or self.sample_seconds <= 0:
            raise WavesynthError("samples must be >= 0 and sample_seconds > 0")

    def dataset(self, split: str, segment_frames: int, seed: int, pitch: bool = False,
                setting: str | None = None) -> SegmentDataset:
        """Crops of ``split`` from every cache, checked against the preset (with F0 labels if ``pitch``).
        With ``setting`` (the name of the data setting that gave ``segment_frames``), a crop longer than
        every utterance of the split is refused: it would be mostly padding, and a huge one fills the
        memory."""
        data = SegmentDataset(self.caches, split, segment_frames=segment_frames, seed=seed, pitch=pitch)
        if data.config.name != self.preset:
            raise WavesynthError(f"{data.cache.root} holds {data.config.name!r} features but data.preset is "
                                 f"{self.preset!r}; preprocess with --preset {self.preset} or change "
                                 "data.preset")
        longest = max(row["frames"] for _, row in data.rows)
        if setting is not None and segment_frames > longest:
            raise WavesynthError(f"data.{setting} ({segment_frames}) is longer than every {split!r} "
                                 f"utterance of {', '.join(self.caches)}: make it at most {longest} (the "
                                 "longest, in frames)")
        return data

    def held_out(self, seed: int, pitch: bool = False) -> tuple[dict, list[str]]:
        """A batch of fixed ``sample_seconds`` crops of the first ``samples`` validation utterances, and
        their ids (for conditioning audio samples at each validation)."""
        mel = get_preset(self.preset)
        frames = max(1, round(self.sample_seconds * mel.sample_rate / mel.hop_length))
        data = self.dataset("valid", frames, seed, pitch)
        count = min(self.samples, len(data))
        return data.collate([data[i] for i in range(count)]), [row["id"] for _, row in data.rows[:count]]



class AudioTask(Task):
    """A task trained on crops of feature caches: its config has a ``data: AudioDataConfig`` table and a
    ``model`` config with ``excitation`` and ``harmonics``. A model with an excitation reads the caches'
    F0 labels and gets e = SineExcitation(f0) with a random start phase per crop in training (the phase of
    a crop cut from the middle of an utterance is arbitrary) and φ_0 = 0 in validation."""

    _segments: SegmentDataset | None = None  # the training crops, once ``train_data()`` has run

    @property
    def uses_pitch(self) -> bool:
        return bool(self.config.model.excitation_channels)

    def train_data(self) -> SegmentDataset:
        data = self.config.data
        self._segments = data.dataset("train", data.segment_frames, self.config.train.seed, self.uses_pitch,
                                      setting="segment_frames")
        return self._segments

    def val_data(self) -> SegmentDataset:
        data = self.config.data
        return data.dataset("valid", data.val_segment_frames, self.config.train.seed, self.uses_pitch,
                            setting="val_segment_frames")

    def held_out(self) -> tuple[dict, list[str]]:
        """The validation samples' batch (with F0 when the model uses it) and their ids."""
        return self.config.data.held_out(self.config.train.seed, self.uses_pitch)

    def excitation(self, model_config: AudioModelConfig, batch: dict,
                   phase0: Tensor | float | None = 0.0) -> Tensor | None:
        """e (B, E, T) for ``model_config``'s excitation from the batch's ``f0``, starting at ``phase0``
        (None: a uniform random φ_0 per crop); None for a model without one."""
        if not model_config.excitation_channels:
            return None
        source = SineExcitation.for_mel(model_config.harmonics, get_preset(self.config.data.preset))
        f0 = batch["f0"]
        if phase0 is None:
            phase0 = torch.rand(f0.shape[0], dtype=torch.float64, device=f0.device)
        return source(f0, phase0).to(batch["mel"].dtype)

    def collate(self, items: list[dict]) -> dict:
        """A batch of training crops (``SegmentDataset.collate``), also before ``train_data()`` has run."""
        if self._segments is None:
            self.train_data()
        return self._segments.collate(items)
