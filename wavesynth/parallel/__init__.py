"""The Parallel WaveNet student (an IAF stack over logistic noise) and the distillation losses.

Training lives in ``wavesynth.parallel.task`` (``StudentTask``, run by ``wavesynth train student``).
"""

from .config import StudentConfig
from .losses import (
    GaussianKL,
    ReverseKL,
    contrastive_loss,
    cross_entropy,
    gaussian_kl,
    power_loss,
    reverse_kl,
    spectral_loss,
    student_entropy,
    teacher_log_density,
)
from .student import IAFFlow, ParallelWaveNet, StudentContext

__all__ = [
    "GaussianKL",
    "IAFFlow",
    "ParallelWaveNet",
    "ReverseKL",
    "StudentConfig",
    "StudentContext",
    "contrastive_loss",
    "cross_entropy",
    "gaussian_kl",
    "power_loss",
    "reverse_kl",
    "spectral_loss",
    "student_entropy",
    "teacher_log_density",
]
