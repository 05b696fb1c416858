"""Training the WaveNet teacher by maximum likelihood: ``wavesynth train teacher --config FILE``.

The loss is the negative log-likelihood in nats per sample, -1/T Σ_t log p(x_t | x_<t, c), on random
crops of the preprocessed corpus; validation reports it on fixed held-out crops, in bits per 16-bit
sample as well, and writes audio generated autoregressively from held-out mels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..audio import get_preset, model_from_preset
from ..audio_task import AudioDataConfig, AudioTask, check_model_fits_preset
from ..train import Audio, TrainConfig
from .config import WaveNetConfig
from .generation import generate
from .model import WaveNet


@dataclass
class TeacherConfig:
    """A teacher run: the model, its data and the training loop (``recipes/<corpus>/teacher.toml``)."""

    model: WaveNetConfig = field(default_factory=WaveNetConfig)
    data: AudioDataConfig = field(default_factory=AudioDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def upgrade(cls, data: Mapping[str, Any]) -> Mapping[str, Any]:
        return model_from_preset(data)

    def __post_init__(self) -> None:
        check_model_fits_preset(self.model, self.data.preset)


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
        waves = generate(model, batch["mel"], self._speaker(batch),
                         excitation=self.excitation(self.config.model, batch))
        rate = get_preset(data.preset).sample_rate
        return {name: Audio(wave, rate) for name, wave in zip(names, waves, strict=True)}
