"""Pitch: F0 prediction from the mel and the sine excitation built from it.

``PitchPredictor`` (``wavesynth.pitch.predictor``) maps log-mel frames to F0 and voicing; its training task
and ``load_pitch_predictor`` (from a training checkpoint) live in ``wavesynth.pitch.task`` and are loaded
on first use, so importing this package stays light.
"""

from typing import Any

from .predictor import PitchPredictor, PitchPredictorConfig

_TASK_NAMES = ("PitchConfig", "PitchDataConfig", "PitchTask", "load_pitch_predictor")

__all__ = ["PitchPredictor", "PitchPredictorConfig", *_TASK_NAMES]


def __getattr__(name: str) -> Any:
    if name in _TASK_NAMES:
        from . import task

        return getattr(task, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
