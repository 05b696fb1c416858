"""Evaluation: objective metrics, the Griffin-Lim baseline, and copy-synthesis reports with figures.

PESQ, STOI, DNSMOS and the figures need the ``eval`` extra (``pip install wavesynth[eval]``).
"""

from .griffin_lim import griffin_lim, mel_to_magnitude
from .metrics import (
    dnsmos,
    dnsmos_available,
    f0_rmse_cents,
    gross_pitch_error,
    log_mel_distance,
    log_mel_distance_by_region,
    mel_cepstral_distortion,
    pesq_wideband,
    real_time_factor,
    stoi,
    vuv_error,
)

__all__ = [
    "dnsmos",
    "dnsmos_available",
    "f0_rmse_cents",
    "griffin_lim",
    "gross_pitch_error",
    "log_mel_distance",
    "log_mel_distance_by_region",
    "mel_cepstral_distortion",
    "mel_to_magnitude",
    "pesq_wideband",
    "real_time_factor",
    "stoi",
    "vuv_error",
]
