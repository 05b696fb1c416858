"""The interface a model supplies to the Trainer: its config, model, data, loss, metrics and samples."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, default_collate

from .checkpoint import load_checkpoint
from .config import from_dict


@dataclass
class Audio:
    """A clip to log: float waveform in [-1, 1], shape (T,)."""

    wave: Tensor
    sample_rate: int


@dataclass
class Image:
    """An image to log: float tensor in [0, 1], shape (channels, height, width)."""

    pixels: Tensor


class Task(ABC):
    """A model family, as the Trainer sees it.

    ``config_class`` is a config dataclass with a ``train: TrainConfig`` field (the loop settings) and any
    model/data fields the task wants. ``__init__`` only stores the config: heavy work (reading a corpus,
    loading a teacher) belongs in the methods, so a checkpoint can cheaply rebuild the task.
    The Trainer sets ``self.device`` before it calls ``build_model``.
    """

    config_class: ClassVar[type]

    def __init__(self, config: Any) -> None:
        self.config = config
        self.device = torch.device("cpu")

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (the Trainer moves it to ``self.device``)."""

    @abstractmethod
    def train_data(self) -> Dataset:
        """The training set: a map-style dataset (``len`` and integer indexing)."""

    def val_data(self) -> Dataset | None:
        """The validation set, or None for no validation."""
        return None

    def collate(self, items: list[Any]) -> Any:
        """Merge dataset items into a batch (tensors anywhere inside it are moved to the device)."""
        return default_collate(items)

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        """Named scalar terms of the loss on ``batch``; the key ``"loss"`` is the total that is minimised.

        Make each term a mean over the batch: then any split of the global batch over processes and
        accumulation steps gives the same gradient. Call ``model(...)`` itself: under DDP ``model`` is the
        DistributedDataParallel wrapper (the bare module is ``model.module``), and only its forward
        synchronises gradients.
        """

    def validate(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        """Validation metrics on a batch, each a mean over the batch (lower is better for the one that picks
        the best checkpoint, ``"loss"``). Runs on the EMA model under ``torch.no_grad``."""
        return self.loss(model, batch)

    def samples(self, model: nn.Module) -> dict[str, Audio | Image]:
        """Examples to log at each validation (e.g. audio clips, image grids); runs on the EMA model."""
        return {}


def load_trained(path: str | Path, task_class: type[Task], *, ema: bool = True,
                 map_location: str | torch.device = "cpu") -> tuple[Task, nn.Module]:
    """Rebuild a task and its trained model from a checkpoint alone (EMA weights unless ``ema=False``)."""
    state = load_checkpoint(path, map_location)
    task = task_class(from_dict(task_class.config_class, state["config"]))
    model = task.build_model()
    model.load_state_dict(state["ema"]["module"] if ema else state["model"])
    return task, model.to(map_location).eval()
