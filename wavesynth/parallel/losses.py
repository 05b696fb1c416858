"""Probability density distillation: the loss terms, each a scalar in nats per sample (mean over batch, time).

The student draws x = g(z, c) with p_S(x_t | z_<t) a logistic (or Gaussian) with parameters (μ_tot, s_tot);
one pass of the frozen teacher over x gives p_T(x_t | x_<t, c) for every t, differentiably in x. Then

    KL(p_S ‖ p_T) = H(p_S, p_T) - H(p_S),
    H(p_S)       = E[Σ_t log s_tot] + T·h(ε)        (h(ε) = 2 for logistic noise, ½ log 2πe for Gaussian),
    H(p_S, p_T)  = Σ_t E_{x_<t} E_{x_t ~ p_S(x_t | z_<t)}[-log p_T(x_t | x_<t)],

where the inner expectation is estimated with M fresh draws x_t^(m) = μ_tot + s_tot·ε^(m) scored against
the teacher's distribution at t (which depends on x_<t only). Gradients reach the student through the
draws and through the teacher's input x_<t. With a Gaussian teacher and a Gaussian student the per-step
KL is closed form (ClariNet). Auxiliary terms: a power loss on STFT magnitudes, a multi-resolution
spectral loss (spectral convergence and log-magnitude distance at several STFT sizes, which matches the
quiet parts of the spectrum the power loss ignores) and a contrastive term that rewards a large KL
against the teacher given a mismatched mel, and HiFi-GAN's log-mel L1 distance (``log_mel_l1``).

Every term computes in float32 (``wavesynth.flows.base.float32_region``): under bf16 autocast the student's
and teacher's networks run in bf16, but their outputs are cast up here and autocast is off inside (an STFT,
a 16-bit-bin log-probability or a mean over a crop is not something to do in bf16).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..errors import WavesynthError
from ..flows.base import float32_region
from ..wavenet.distributions import LEVELS, OutputHead, make_head

#: Differential entropy h(ε) of one standard noise sample, in nats.
NOISE_ENTROPY = {"logistic": 2.0, "gaussian": 0.5 * math.log(2 * math.pi * math.e)}

#: Teacher heads whose log-probability is differentiable in x (the mu-law head quantises x).
DISTILLABLE_HEADS = ("mol", "gaussian", "logistic")

_LOG_BIN_WIDTH = math.log(2 / (LEVELS - 1))


class ReverseKL(NamedTuple):
    """KL(p_S ‖ p_T) = cross_entropy - entropy, each in nats per sample."""

    kl: Tensor
    cross_entropy: Tensor
    entropy: Tensor


class GaussianKL(NamedTuple):
    """ClariNet's objective ``loss`` = kl + λ·log_scale_penalty, in nats per sample."""

    loss: Tensor
    kl: Tensor
    log_scale_penalty: Tensor


def check_teacher_head(head: OutputHead) -> None:
    """ValueError unless the teacher's head gives a density differentiable in x."""
    if head.name not in DISTILLABLE_HEADS:
        raise WavesynthError(
            f"cannot distil from a teacher with the {head.name!r} head: its log-probability is not "
            f"differentiable in x; use one of {', '.join(DISTILLABLE_HEADS)}"
        )


@float32_region
def teacher_log_density(head: OutputHead, params: Tensor, x: Tensor) -> Tensor:
    """log p_T(x) as a density on [-1, 1]: a 16-bit bin probability is divided by the bin width 2/(2^16-1).

    ``params`` (B, P, *) broadcasts against x (B, *), e.g. params (B, P, 1, T) for M draws x (B, M, T).
    """
    return head.log_prob(params, x) + head.bin_log_width - _LOG_BIN_WIDTH


@float32_region
def student_entropy(log_s_tot: Tensor, noise: str = "logistic") -> Tensor:
    """H(p_S) per sample: mean of log s_tot + h(ε) (exact given the log-scales of the student's samples)."""
    return log_s_tot.mean() + NOISE_ENTROPY[noise]


@float32_region
def cross_entropy(
    teacher_head: OutputHead,
    teacher_params: Tensor,
    mu_tot: Tensor,
    log_s_tot: Tensor,
    noise: str = "logistic",
    samples: int = 4,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Monte Carlo H(p_S, p_T) per sample from M = ``samples`` draws of p_S(x_t | z_<t) at every t.

    ``teacher_params`` (B, P, T) are the teacher's head parameters from one pass over the student's sample.
    """
    B, T = mu_tot.shape
    eps = make_head(noise).draw_noise((B, samples, T), generator, mu_tot.device, mu_tot.dtype)[:, 0]
    draws = torch.addcmul(mu_tot.unsqueeze(1), log_s_tot.exp().unsqueeze(1), eps)  # (B, M, T)
    return -teacher_log_density(teacher_head, teacher_params.unsqueeze(2), draws).mean()


@float32_region
def reverse_kl(
    teacher_head: OutputHead,
    teacher_params: Tensor,
    mu_tot: Tensor,
    log_s_tot: Tensor,
    noise: str = "logistic",
    samples: int = 4,
    generator: torch.Generator | None = None,
) -> ReverseKL:
    """KL(p_S ‖ p_T) = H(p_S, p_T) - H(p_S) per sample, with its two parts (see ``cross_entropy``)."""
    h_cross = cross_entropy(teacher_head, teacher_params, mu_tot, log_s_tot, noise, samples, generator)
    h_student = student_entropy(log_s_tot, noise)
    return ReverseKL(h_cross - h_student, h_cross, h_student)


@float32_region
def gaussian_kl(
    teacher_mean: Tensor,
    teacher_log_std: Tensor,
    mu_tot: Tensor,
    log_s_tot: Tensor,
    log_scale_weight: float = 4.0,
) -> GaussianKL:
    """ClariNet: closed-form KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) per step, q the student, p the teacher,

        KL = log σ_p - log σ_q + (σ_q² + (μ_q - μ_p)²) / (2σ_p²) - ½,

    plus the regulariser λ·(log σ_p - log σ_q)² (λ = ``log_scale_weight``, 4 in ClariNet), which keeps
    the student's scale near the teacher's where the KL alone is flat. μ_q, log σ_q = μ_tot, log s_tot.
    """
    log_ratio = teacher_log_std - log_s_tot
    inv_var_p = torch.exp(-2 * teacher_log_std)
    kl = log_ratio + 0.5 * (torch.exp(2 * log_s_tot) + (mu_tot - teacher_mean).square()) * inv_var_p - 0.5
    kl, penalty = kl.mean(), log_ratio.square().mean()
    return GaussianKL(kl + log_scale_weight * penalty, kl, penalty)


@float32_region
def contrastive_loss(
    teacher_head: OutputHead,
    mismatched_params: Tensor,
    mu_tot: Tensor,
    log_s_tot: Tensor,
    noise: str = "logistic",
    samples: int = 4,
    closed_form: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """-KL(p_S(·|c) ‖ p_T(·|c')): minimising γ times this (γ = 0.3 in Parallel WaveNet) pushes the student
    away from the teacher given a mismatched mel c' (its params from one teacher pass over the same x).

    ``closed_form`` uses ``gaussian_kl`` (Gaussian teacher and student), else the sampled estimate.
    """
    if closed_form:
        mean, log_std = teacher_head.split(mismatched_params)
        return -gaussian_kl(mean, log_std, mu_tot, log_s_tot).kl
    return -reverse_kl(teacher_head, mismatched_params, mu_tot, log_s_tot, noise, samples, generator).kl


@float32_region
def stft_magnitude(x: Tensor, n_fft: int = 1024, hop_length: int = 256) -> Tensor:
    """|STFT(x)| (B, n_fft/2 + 1, frames) with a periodic Hann window of n_fft samples, centred frames."""
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    return torch.stft(x, n_fft, hop_length, window=window, return_complex=True).abs()


@float32_region
def power_loss(x: Tensor, target: Tensor, n_fft: int = 1024, hop_length: int = 256) -> Tensor:
    """mean over batch, bins and frames of (|STFT(x)| - |STFT(y)|)² for student audio x, real audio y.

    Parallel WaveNet's power loss in ClariNet's form (magnitudes rather than powers, which keeps loud and
    quiet frames on one scale): it makes the student match the energy per frequency band of speech.
    """
    return (stft_magnitude(x, n_fft, hop_length) - stft_magnitude(target, n_fft, hop_length)).square().mean()


#: Floor of the STFT magnitudes in the log-magnitude distance (-140 dB re. full scale).
SPECTRAL_FLOOR = 1e-7


@float32_region
def spectral_loss(x: Tensor, target: Tensor, n_ffts: tuple[int, ...] = (512, 1024, 2048)) -> Tensor:
    """Multi-resolution STFT loss (Yamamoto et al. 2020) of student audio x against real audio y: the mean
    over resolutions (Hann window n_fft, hop n_fft/4) of the spectral convergence ‖|Y| - |X|‖_F / ‖|Y|‖_F
    plus the log-magnitude distance mean |ln|Y| - ln|X||, magnitudes floored at ``SPECTRAL_FLOOR``.

    The log term weighs a 30 dB error in a quiet band as much as in a loud one, so it removes the noise
    floor in silences and between harmonics that ``power_loss`` (linear magnitudes) barely sees.
    """
    total = x.new_zeros(())
    for n_fft in n_ffts:
        estimate = stft_magnitude(x, n_fft, n_fft // 4).clamp_min(SPECTRAL_FLOOR)
        reference = stft_magnitude(target, n_fft, n_fft // 4).clamp_min(SPECTRAL_FLOOR)
        convergence = torch.linalg.vector_norm(reference - estimate) / torch.linalg.vector_norm(reference)
        total = total + convergence + (reference.log() - estimate.log()).abs().mean()
    return total / len(n_ffts)


@float32_region
def log_mel_l1(extractor: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """mean |log mel(x) - log mel(y)| of student audio x against real audio y (HiFi-GAN's reconstruction
    loss), with ``extractor`` a ``wavesynth.audio.MelExtractor`` (its preset's log, floor and mel scale)."""
    return (extractor.log_mel(x) - extractor.log_mel(target)).abs().mean()
