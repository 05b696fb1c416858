"""Training the WaveNet teacher by maximum likelihood: ``wavesynth train teacher --config FILE``.

The loss is the negative log-likelihood in nats per sample, -1/T Σ_t log p(x_t | x_<t, c), on random
crops of the preprocessed corpus; validation reports it on fixed held-out crops, in bits per 16-bit
sample as well, and writes audio generated autoregressively from held-out mels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..audio import SegmentDataset, get_preset
from ..train import Audio, Task, TrainConfig
from .config import WaveNetConfig
from .model import WaveNet


@dataclass
class AudioDataConfig:
    """Where the training audio is and how it is cut (the ``[data]`` table)."""

    caches: list[str] = field(default_factory=lambda: ["cache/ljspeech-22k"])  # `wavesynth preprocess` out
    preset: str = "hifigan-22k"  # the mel preset every cache must have been made with
    segment_frames: int = 32  # training crop, in mel frames (× hop_length samples)
    val_segment_frames: int = 128  # fixed held-out crops for the validation loss
    samples: int = 2  # held-out utterances turned into audio at each validation (0: none)
    sample_seconds: float = 1.0  # length of each generated sample

    def __post_init__(self) -> None:
        get_preset(self.preset)
        if not self.caches:
            raise ValueError("caches must name at least one feature cache")
        for name in ("segment_frames", "val_segment_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.samples < 0 or self.sample_seconds <= 0:
            raise ValueError("samples must be >= 0 and sample_seconds > 0")

    def dataset(self, split: str, segment_frames: int, seed: int) -> SegmentDataset:
        """Crops of ``split`` from every cache, checked against the preset."""
        data = SegmentDataset(self.caches, split, segment_frames=segment_frames, seed=seed)
        if data.config.name != self.preset:
            raise ValueError(f"{data.cache.root} holds {data.config.name!r} features but data.preset is "
                             f"{self.preset!r}; preprocess with --preset {self.preset} or change data.preset")
        return data

    def held_out(self, seed: int) -> tuple[dict, list[str]]:
        """A batch of fixed ``sample_seconds`` crops of the first ``samples`` validation utterances, and
        their ids (for conditioning audio samples at each validation)."""
        mel = get_preset(self.preset)
        frames = max(1, round(self.sample_seconds * mel.sample_rate / mel.hop_length))
        data = self.dataset("valid", frames, seed)
        count = min(self.samples, len(data))
        return data.collate([data[i] for i in range(count)]), [row["id"] for _, row in data.rows[:count]]


@dataclass
class TeacherConfig:
    """A teacher run: the model, its data and the training loop (``recipes/<corpus>/teacher.toml``)."""

    model: WaveNetConfig = field(default_factory=WaveNetConfig)
    data: AudioDataConfig = field(default_factory=AudioDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        mel = get_preset(self.data.preset)
        if (self.model.n_mels, self.model.hop_length) != (mel.n_mels, mel.hop_length):
            raise ValueError(f"model.n_mels, model.hop_length = {self.model.n_mels}, {self.model.hop_length} "
                             f"must match preset {mel.name!r} ({mel.n_mels}, {mel.hop_length})")


class AudioTask(Task):
    """A task trained on crops of feature caches: its config has a ``data: AudioDataConfig`` table."""

    def train_data(self) -> SegmentDataset:
        data = self.config.data
        self._segments = data.dataset("train", data.segment_frames, self.config.train.seed)
        return self._segments

    def val_data(self) -> SegmentDataset:
        data = self.config.data
        return data.dataset("valid", data.val_segment_frames, self.config.train.seed)

    def collate(self, items: list[dict]) -> dict:
        return self._segments.collate(items)


class TeacherTask(AudioTask):
    """Maximum-likelihood training of :class:`WaveNet` on a feature cache."""

    config_class = TeacherConfig

    def build_model(self) -> WaveNet:
        return WaveNet(self.config.model)

    def _speaker(self, batch: dict) -> Tensor | None:
        return batch["speaker"] if self.config.model.n_speakers else None

    def loss(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        log_p = model(batch["wave"], batch["mel"], self._speaker(batch))
        return {"loss": -log_p.mean()}

    def validate(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        """NLL in nats and in bits per 16-bit sample over the samples inside the utterances."""
        log_p = model(batch["wave"], batch["mel"], self._speaker(batch))
        lengths = batch["frames"] * self.config.model.hop_length
        inside = torch.arange(log_p.shape[1], device=log_p.device) < lengths.unsqueeze(1)
        nll = -(log_p * inside).sum() / inside.sum()
        return {"loss": nll, "bits_per_sample": model.bits_per_sample(log_p, lengths)}

    def samples(self, model: nn.Module) -> dict[str, Audio]:
        """Audio generated from held-out mels (the EMA model, temperature 1)."""
        data = self.config.data
        if not data.samples:
            return {}
        batch, names = data.held_out(self.config.train.seed)
        waves = model.generate(batch["mel"].to(self.device), self._speaker(batch))
        rate = get_preset(data.preset).sample_rate
        return {name: Audio(wave, rate) for name, wave in zip(names, waves, strict=True)}
