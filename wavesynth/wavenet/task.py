"""Training the WaveNet teacher by maximum likelihood: ``wavesynth train teacher --config FILE``.

The loss is the negative log-likelihood in nats per sample, -1/T Σ_t log p(x_t | x_<t, c), on random
crops of the preprocessed corpus; validation reports it on fixed held-out crops, in bits per 16-bit
sample as well, and writes audio generated autoregressively from held-out mels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..audio import SegmentDataset, get_preset
from ..errors import WavesynthError
from ..pitch.excitation import SineExcitation
from ..train import Audio, Task, TrainConfig
from .config import WaveNetConfig
from .model import WaveNet

if TYPE_CHECKING:
    from ..parallel.config import StudentConfig


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


@dataclass
class TeacherConfig:
    """A teacher run: the model, its data and the training loop (``recipes/<corpus>/teacher.toml``)."""

    model: WaveNetConfig = field(default_factory=WaveNetConfig)
    data: AudioDataConfig = field(default_factory=AudioDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        mel = get_preset(self.data.preset)
        if (self.model.n_mels, self.model.hop_length) != (mel.n_mels, mel.hop_length):
            raise WavesynthError(f"model.n_mels, model.hop_length = {self.model.n_mels}, "
                                 f"{self.model.hop_length} must match preset {mel.name!r} ({mel.n_mels}, "
                                 f"{mel.hop_length})")


class AudioTask(Task):
    """A task trained on crops of feature caches: its config has a ``data: AudioDataConfig`` table and a
    ``model`` config with ``excitation`` and ``harmonics``. A model with an excitation reads the caches'
    F0 labels and gets e = SineExcitation(f0) with a random start phase per crop in training (the phase of
    a crop cut from the middle of an utterance is arbitrary) and φ_0 = 0 in validation."""

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

    def excitation(self, model_config: WaveNetConfig | StudentConfig, batch: dict,
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
        return self._segments.collate(items)


class TeacherTask(AudioTask):
    """Maximum-likelihood training of :class:`WaveNet` on a feature cache."""

    config_class = TeacherConfig

    def build_model(self) -> WaveNet:
        return WaveNet(self.config.model)

    def _speaker(self, batch: dict) -> Tensor | None:
        return batch["speaker"] if self.config.model.n_speakers else None

    def loss(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        excitation = self.excitation(self.config.model, batch, phase0=None)
        log_p = model(batch["wave"], batch["mel"], self._speaker(batch), excitation)
        return {"loss": -log_p.mean()}

    def validate(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        """NLL in nats and in bits per 16-bit sample over the samples inside the utterances."""
        excitation = self.excitation(self.config.model, batch)
        log_p = model(batch["wave"], batch["mel"], self._speaker(batch), excitation)
        lengths = batch["frames"] * self.config.model.hop_length
        inside = torch.arange(log_p.shape[1], device=log_p.device) < lengths.unsqueeze(1)
        nll = -(log_p * inside).sum() / inside.sum()
        return {"loss": nll, "bits_per_sample": model.bits_per_sample(log_p, lengths)}

    def samples(self, model: nn.Module) -> dict[str, Audio]:
        """Audio generated from held-out mels (the EMA model, temperature 1)."""
        data = self.config.data
        if not data.samples:
            return {}
        batch, names = self.held_out()
        batch = {key: value.to(self.device) for key, value in batch.items()}
        waves = model.generate(batch["mel"], self._speaker(batch),
                               excitation=self.excitation(self.config.model, batch))
        rate = get_preset(data.preset).sample_rate
        return {name: Audio(wave, rate) for name, wave in zip(names, waves, strict=True)}
