"""One training engine for every model: configs, loop, checkpoints, EMA, DDP and logging.

A model plugs in as a :class:`Task`; :class:`Trainer` runs it (see the README's Training section).
"""

from .checkpoint import CheckpointDir, load_checkpoint, save_checkpoint
from .config import TrainConfig, dump_toml, from_dict, load_config, save_config, to_dict
from .ema import EMA
from .task import Audio, Image, Task, load_trained
from .trainer import NonFiniteError, Trainer, TrainResult

__all__ = [
    "EMA",
    "Audio",
    "CheckpointDir",
    "Image",
    "NonFiniteError",
    "Task",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "dump_toml",
    "from_dict",
    "load_checkpoint",
    "load_config",
    "load_trained",
    "save_checkpoint",
    "save_config",
    "to_dict",
]
