"""One training engine for every model: configs, loop, checkpoints, EMA, DDP and logging.

A model plugs in as a :class:`Task`; :class:`Trainer` runs it (see the README's Training section).
``train.precision`` ("fp32", "bf16" or "auto") is resolved and applied by :mod:`.precision`.
"""

from .checkpoint import CheckpointDir, load_checkpoint, save_checkpoint
from .config import TrainConfig, dump_toml, from_dict, load_config, save_config, to_dict
from .ema import EMA
from .precision import PRECISIONS, autocast, native_bf16, resolve_precision
from .task import Audio, Image, Task, load_trained
from .trainer import NonFiniteError, Trainer, TrainResult

__all__ = [
    "EMA",
    "Audio",
    "CheckpointDir",
    "Image",
    "NonFiniteError",
    "PRECISIONS",
    "Task",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "autocast",
    "dump_toml",
    "from_dict",
    "load_checkpoint",
    "load_config",
    "load_trained",
    "native_bf16",
    "resolve_precision",
    "save_checkpoint",
    "save_config",
    "to_dict",
]
