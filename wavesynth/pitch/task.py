"""Training the mel -> F0 predictor on tracker labels: ``wavesynth train pitch --config FILE``.

The loss (``PitchPredictor.loss_terms``) is the cross-entropy against Gaussian-blurred log-F0 targets on
voiced frames plus the voicing BCE, on random crops of the feature caches with their pitch labels
(``pitch/<id>.npy``, written at preprocessing). Validation runs the EMA model on whole held-out utterances
and reports, against the tracker's labels over the frames inside the utterances, the loss and
``gpe`` (gross pitch error, share of frames voiced in both off by > 20 %), ``cents_rmse`` (over frames
voiced in both) and ``vuv_error`` (share of frames with the wrong voicing decision).

The predictor sees the mels exactly as the vocoders do (``SegmentDataset``: the preset's log-mel,
normalised with the corpus statistics only when the preset normalises).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..audio import DEFAULT_PRESET, SegmentDataset, get_preset, model_from_preset
from ..errors import WavesynthError
from ..eval.metrics import f0_rmse_cents, gross_pitch_error, vuv_error
from ..train import Task, TrainConfig, load_trained
from .predictor import PitchPredictor, PitchPredictorConfig


@dataclass
class PitchDataConfig:
    """Where the labelled mels are and how they are cut (the ``[data]`` table of a pitch recipe)."""

    caches: list[str] = field(default_factory=lambda: ["cache/ljspeech-22k"])  # with pitch/ labels
    preset: str = DEFAULT_PRESET  # the mel preset every cache must have been made with
    segment_frames: int = 96  # training crop, in mel frames
    val_segment_frames: int = 0  # validation crop; 0: whole utterances

    def __post_init__(self) -> None:
        get_preset(self.preset)
        if not self.caches:
            raise WavesynthError("caches must name at least one feature cache")
        if self.segment_frames < 1:
            raise WavesynthError(f"segment_frames must be >= 1, got {self.segment_frames}")
        if self.val_segment_frames < 0:
            raise WavesynthError("val_segment_frames must be >= 0 (0: whole utterances), got "
                                 f"{self.val_segment_frames}")

    def dataset(self, split: str, segment_frames: int | None, seed: int) -> SegmentDataset:
        """Crops (None: whole utterances) of ``split`` with their pitch labels, checked against the preset."""
        data = SegmentDataset(self.caches, split, segment_frames=segment_frames, seed=seed, pitch=True)
        if data.config.name != self.preset:
            raise WavesynthError(f"{data.cache.root} holds {data.config.name!r} features but data.preset is "
                                 f"{self.preset!r}; preprocess with --preset {self.preset} or change "
                                 "data.preset")
        return data


@dataclass
class PitchConfig:
    """A pitch predictor run: the model, its data and the training loop (``recipes/<corpus>/pitch.toml``)."""

    model: PitchPredictorConfig = field(default_factory=PitchPredictorConfig)
    data: PitchDataConfig = field(default_factory=PitchDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def upgrade(cls, data: Mapping[str, Any]) -> Mapping[str, Any]:
        return model_from_preset(data, keys=("n_mels",))

    def __post_init__(self) -> None:
        mel = get_preset(self.data.preset)
        if self.model.n_mels != mel.n_mels:
            raise WavesynthError(f"model.n_mels = {self.model.n_mels} must match preset {mel.name!r} "
                                 f"({mel.n_mels})")


def inside_mask(batch: dict) -> Tensor:
    """(B, F): 1 on the frames of each item that lie inside its utterance (``frames`` from the start)."""
    width = batch["mel"].shape[-1]
    return (torch.arange(width, device=batch["mel"].device) < batch["frames"].unsqueeze(1)).float()


def pitch_metrics(f0_ref: np.ndarray, f0_est: np.ndarray) -> dict[str, float]:
    """``gpe``, ``cents_rmse`` and ``vuv_error`` of an estimate against a reference (Hz, 0 = unvoiced)."""
    return {"gpe": gross_pitch_error(f0_ref, f0_est), "cents_rmse": f0_rmse_cents(f0_ref, f0_est),
            "vuv_error": vuv_error(f0_ref, f0_est)}


class PitchTask(Task):
    """Trains :class:`PitchPredictor` on the pitch labels of feature caches."""

    config_class = PitchConfig

    def build_model(self) -> PitchPredictor:
        return PitchPredictor(self.config.model, get_preset(self.config.data.preset))

    def train_data(self) -> SegmentDataset:
        data = self.config.data
        self._segments = data.dataset("train", data.segment_frames, self.config.train.seed)
        return self._segments

    def val_data(self) -> SegmentDataset:
        data = self.config.data
        return data.dataset("valid", data.val_segment_frames or None, self.config.train.seed)

    def collate(self, items: list[dict]) -> dict:
        return self._segments.collate(items)

    def loss(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        bare = getattr(model, "module", model)  # under DDP, call the wrapper (it syncs gradients)
        return bare.loss_terms(*model(batch["mel"]), batch["f0"], batch["voiced"], inside_mask(batch))

    def validate(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        """The loss and the pitch metrics against the tracker, over the frames inside the utterances (the
        Trainer averages them over batches weighted by item count: with one validation batch,
        ``train.val_batch_size`` >= the validation utterances, they are exact frame ratios; a metric is
        NaN for a batch without a frame that qualifies)."""
        bin_logits, voicing_logit = model(batch["mel"])
        mask = inside_mask(batch)
        terms = model.loss_terms(bin_logits, voicing_logit, batch["f0"], batch["voiced"], mask)
        f0, _ = model.decode(bin_logits, voicing_logit)
        keep = mask.bool().cpu().numpy()
        reference = torch.where(batch["voiced"] > 0.5, batch["f0"], torch.zeros_like(batch["f0"]))
        metrics = pitch_metrics(reference.float().cpu().numpy()[keep], f0.cpu().numpy()[keep])
        return {**terms, **{k: torch.tensor(v) for k, v in metrics.items()}}


def load_pitch_predictor(path: str | os.PathLike, *, ema: bool = True,
                         map_location: str | torch.device = "cpu") -> PitchPredictor:
    """The trained predictor (EMA weights unless ``ema=False``) of a pitch training checkpoint, in eval
    mode, with ``mel_config`` set to the run's preset; ``.save(folder)`` puts it in a model folder."""
    task, model = load_trained(path, PitchTask, ema=ema, map_location=map_location)
    if not isinstance(model, PitchPredictor):  # pragma: no cover - load_trained builds a PitchTask model
        raise WavesynthError(f"{path}: not a pitch predictor checkpoint")
    model.mel_config = get_preset(task.config.data.preset)
    return model
