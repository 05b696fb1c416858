"""Distilling a student from a trained teacher: ``wavesynth train student --config FILE --teacher CKPT``.

Each step draws noise z, runs the student x = g(z, c) on a training crop's mel c, runs the frozen teacher
once over x (not at all when kl_weight and contrastive_weight are 0: that pass is most of a step's time) and
minimises

    kl_weight · KL(p_S ‖ p_T) + power_weight · power loss + spectral_weight · spectral loss
        + mel_weight · mean |log mel(x) - log mel(x_real)| + contrastive_weight · (-KL(p_S ‖ p_T(·|c'))),

with the KL sampled (Parallel WaveNet, M draws per step) or closed form (ClariNet, Gaussian teacher and
student, plus λ times the log-scale regulariser); the mel term is HiFi-GAN's reconstruction loss, on the
preset's own log-mel (the features the student is conditioned on); c' is a mismatched mel (the batch
rolled by one, or the mel reversed in time for a batch of one). Every term is logged. Validation reports
the objective without the contrastive term (which selects best.pt), the KL estimate, the power and
spectral terms, the teacher's NLL of the student's samples, the student's entropy and the log-mel L1
distance between the student's audio and the real audio of the same mel, and writes audio samples.

The teacher is loaded lazily (``teacher`` property) from the checkpoint named by ``DistillConfig.teacher``,
with its EMA weights, frozen and in eval mode; it is held on the task, outside the student's module tree,
so it is in no state_dict, optimiser or DDP wrapper.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..audio import MelExtractor, get_preset, model_from_preset
from ..audio_task import AudioDataConfig, AudioTask, check_model_fits_preset
from ..errors import WavesynthError
from ..train import Audio, TrainConfig, load_trained
from ..wavenet import WaveNet
from ..wavenet.task import TeacherTask
from .config import StudentConfig
from .losses import (
    check_teacher_head,
    contrastive_loss,
    gaussian_kl,
    log_mel_l1,
    power_loss,
    reverse_kl,
    spectral_loss,
    student_entropy,
    teacher_log_density,
)
from .student import ParallelWaveNet


@dataclass
class LossConfig:
    """The distillation objective (the ``[loss]`` table); defaults from Parallel WaveNet and ClariNet."""

    kl: Literal["sampled", "gaussian"] = "sampled"  # Monte Carlo reverse KL, or ClariNet's closed form
    kl_weight: float = 1.0
    samples: int = 4  # M draws of p_S(x_t | z_<t) per step for the sampled cross-entropy
    log_scale_weight: float = 4.0  # ClariNet's λ on (log σ_T - log σ_S)², closed form only
    power_weight: float = 1.0  # power loss on |STFT| (0 disables)
    spectral_weight: float = 0.0  # multi-resolution STFT loss (0 disables; not in the papers)
    spectral_ffts: list[int] = field(default_factory=lambda: [512, 1024, 2048])  # its STFT sizes
    mel_weight: float = 0.0  # L1 between log-mels of student and real audio (0 disables; HiFi-GAN's)
    contrastive_weight: float = 0.3  # γ, Parallel WaveNet (0 disables; saves one teacher pass)
    n_fft: int = 1024  # STFT of the power loss: Hann window of n_fft samples
    fft_hop: int = 256

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise WavesynthError(f"samples must be >= 1, got {self.samples}")
        weights = ("kl_weight", "log_scale_weight", "power_weight", "spectral_weight", "mel_weight",
                   "contrastive_weight")
        for name in weights:
            if getattr(self, name) < 0:
                raise WavesynthError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (self.kl_weight or self.power_weight or self.spectral_weight or self.mel_weight):
            raise WavesynthError("the objective is empty: set kl_weight, power_weight, spectral_weight or "
                                 "mel_weight above 0")
        if self.n_fft < 2 or not 1 <= self.fft_hop <= self.n_fft:
            raise WavesynthError(f"n_fft must be >= 2 and fft_hop in [1, n_fft], got {self.n_fft} and "
                                 f"{self.fft_hop}")
        if not self.spectral_ffts or min(self.spectral_ffts) < 4:
            raise WavesynthError(f"spectral_ffts must list STFT sizes >= 4, got {self.spectral_ffts}")


@dataclass
class DistillConfig:
    """A student run (``recipes/<corpus>/student.toml``); ``teacher`` is set by ``--teacher CKPT``."""

    teacher: str = ""  # the teacher's training checkpoint (best.pt or step-*.pt of a teacher run)
    model: StudentConfig = field(default_factory=StudentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: AudioDataConfig = field(default_factory=AudioDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def upgrade(cls, data: Mapping[str, Any]) -> Mapping[str, Any]:
        return model_from_preset(data)

    def __post_init__(self) -> None:
        check_model_fits_preset(self.model, self.data.preset)
        mel = get_preset(self.data.preset)
        longest_fft = max(self.loss.spectral_ffts + [self.loss.n_fft])
        if longest_fft // 2 >= self.data.segment_frames * mel.hop_length:
            raise WavesynthError(f"an STFT of {longest_fft} samples needs crops longer than "
                                 f"{longest_fft // 2} samples: raise data.segment_frames above "
                                 f"{longest_fft // 2 // mel.hop_length}")
        if self.loss.kl == "gaussian" and self.model.noise != "gaussian":
            raise WavesynthError("loss.kl = 'gaussian' (ClariNet) needs a Gaussian student: set model.noise "
                                 "= 'gaussian'")


def _bare(model: nn.Module) -> ParallelWaveNet:
    """The student itself, also when ``model`` is its DistributedDataParallel wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def mismatched(mel: Tensor) -> Tensor:
    """Other utterances' mels for the contrastive loss: the batch rolled by one (reversed in time if B=1)."""
    return mel.roll(1, dims=0) if mel.shape[0] > 1 else mel.flip(-1)


class StudentTask(AudioTask):
    """Probability density distillation of :class:`ParallelWaveNet` from a frozen WaveNet teacher."""

    config_class = DistillConfig

    def __init__(self, config: DistillConfig) -> None:
        super().__init__(config)
        self._teacher: WaveNet | None = None

    @property
    def teacher(self) -> WaveNet:
        """The frozen teacher, loaded from ``config.teacher`` on first use."""
        if self._teacher is None:
            if not self.config.teacher:
                raise WavesynthError("no teacher: set teacher = 'path/to/teacher.pt' (wavesynth train "
                                     "student --teacher CKPT)")
            path = Path(self.config.teacher)
            if not path.is_file():
                raise WavesynthError(f"{path}: no such teacher checkpoint")
            try:
                _, teacher = load_trained(path, TeacherTask, map_location=self.device)
            except ValueError as error:
                raise WavesynthError(f"{path} is not a teacher checkpoint: {error}") from None
            self.set_teacher(teacher)
        return self._teacher

    def set_teacher(self, teacher: WaveNet) -> None:
        """Use ``teacher`` (frozen here: no gradients to its weights, eval mode), after checking it fits."""
        check_teacher_head(teacher.head)
        t, s = teacher.config, self.config.model
        if (t.n_mels, t.hop_length) != (s.n_mels, s.hop_length):
            raise WavesynthError(f"the teacher has n_mels, hop_length = {t.n_mels}, {t.hop_length}, the "
                                 f"student {s.n_mels}, {s.hop_length}")
        if self.config.loss.kl == "gaussian" and teacher.head.name != "gaussian":
            raise WavesynthError("loss.kl = 'gaussian' needs a teacher with the Gaussian head, not "
                                 f"{teacher.head.name!r}; use loss.kl = 'sampled'")
        self._teacher = teacher.requires_grad_(False).eval().to(self.device)

    def build_model(self) -> ParallelWaveNet:
        return ParallelWaveNet(self.config.model)

    @property
    def uses_pitch(self) -> bool:
        """F0 labels are read when the student or its teacher has an excitation."""
        return bool(self.config.model.excitation_channels or self.teacher.config.excitation_channels)

    def _excitations(self, batch: dict, random_phase: bool) -> tuple[Tensor | None, Tensor | None]:
        """The student's and the teacher's excitations of one batch, with the same start phases."""
        if not self.uses_pitch:
            return None, None
        f0 = batch["f0"]
        phase = torch.rand(f0.shape[0], dtype=torch.float64, device=f0.device) if random_phase else 0.0
        return (self.excitation(self.config.model, batch, phase),
                self.excitation(self.teacher.config, batch, phase))

    def _speaker(self, batch: dict) -> Tensor | None:
        return batch["speaker"] if self.teacher.config.n_speakers else None

    def loss(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        """The weighted terms on one batch; every term is returned for the logs, "loss" is their sum."""
        cfg, noise = self.config.loss, self.config.model.noise
        mel, speaker = batch["mel"], self._speaker(batch)
        excitation, teacher_excitation = self._excitations(batch, random_phase=True)
        z = _bare(model).draw_noise(batch["wave"].shape, device=mel.device, dtype=mel.dtype)
        x, mu_tot, log_s_tot = model(z, mel, excitation)
        closed_form = cfg.kl == "gaussian"
        if not cfg.kl_weight:  # no teacher pass: it is most of a step's time
            terms = {"entropy": student_entropy(log_s_tot.detach(), noise)}
            total = x.new_zeros(())
        elif closed_form:
            params = self.teacher.distribution_params(x, mel, speaker, teacher_excitation)
            mean, log_std = self.teacher.head.split(params)
            clarinet = gaussian_kl(mean, log_std, mu_tot, log_s_tot, cfg.log_scale_weight)
            terms = {"kl": clarinet.kl, "log_scale_penalty": clarinet.log_scale_penalty,
                     "entropy": student_entropy(log_s_tot.detach(), noise)}
            total = cfg.kl_weight * clarinet.loss
        else:
            params = self.teacher.distribution_params(x, mel, speaker, teacher_excitation)
            kl = reverse_kl(self.teacher.head, params, mu_tot, log_s_tot, noise, cfg.samples)
            terms = {"kl": kl.kl, "cross_entropy": kl.cross_entropy, "entropy": kl.entropy}
            total = cfg.kl_weight * kl.kl
        if cfg.power_weight:
            terms["power"] = power_loss(x, batch["wave"], cfg.n_fft, cfg.fft_hop)
            total = total + cfg.power_weight * terms["power"]
        if cfg.spectral_weight:
            terms["spectral"] = spectral_loss(x, batch["wave"], tuple(cfg.spectral_ffts))
            total = total + cfg.spectral_weight * terms["spectral"]
        if cfg.mel_weight:
            terms["mel"] = self._log_mel_l1(x, batch["wave"])
            total = total + cfg.mel_weight * terms["mel"]
        if cfg.contrastive_weight:
            other_speaker = None if speaker is None else speaker.roll(1, dims=0)
            other = self.teacher.distribution_params(x, mismatched(mel), other_speaker, teacher_excitation)
            terms["contrastive"] = contrastive_loss(self.teacher.head, other, mu_tot, log_s_tot, noise,
                                                    cfg.samples, closed_form)
            total = total + cfg.contrastive_weight * terms["contrastive"]
        return {"loss": total, **terms}

    def validate(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        """The training objective without the contrastive term ("loss", which picks best.pt), its KL (closed
        form or sampled, as in training), power and spectral terms, the teacher's NLL of the student's
        samples, the student's entropy and the log-mel L1 distance to the real audio."""
        cfg, noise = self.config.loss, self.config.model.noise
        mel, wave = batch["mel"], batch["wave"]
        excitation, teacher_excitation = self._excitations(batch, random_phase=False)
        z = _bare(model).draw_noise(wave.shape, device=mel.device, dtype=mel.dtype)
        x, mu_tot, log_s_tot = model(z, mel, excitation)
        params = self.teacher.distribution_params(x, mel, self._speaker(batch), teacher_excitation)
        if cfg.kl == "gaussian":
            clarinet = gaussian_kl(*self.teacher.head.split(params), mu_tot, log_s_tot, cfg.log_scale_weight)
            kl, kl_loss = clarinet.kl, clarinet.loss
        else:
            kl = kl_loss = reverse_kl(self.teacher.head, params, mu_tot, log_s_tot, noise, cfg.samples).kl
        power = power_loss(x, wave, cfg.n_fft, cfg.fft_hop)
        spectral = spectral_loss(x, wave, tuple(cfg.spectral_ffts))
        log_mel_l1 = self._log_mel_l1(x, wave)
        return {
            "loss": cfg.kl_weight * kl_loss + cfg.power_weight * power + cfg.spectral_weight * spectral
            + cfg.mel_weight * log_mel_l1,
            "kl": kl,
            "teacher_nll": -teacher_log_density(self.teacher.head, params, x).mean(),
            "entropy": student_entropy(log_s_tot, noise),
            "power": power,
            "spectral": spectral,
            "log_mel_l1": log_mel_l1,
        }

    def _log_mel_l1(self, x: Tensor, wave: Tensor) -> Tensor:
        """``log_mel_l1`` (float32, also under bf16 autocast) on the preset's extractor."""
        if not hasattr(self, "_extractor"):
            self._extractor = MelExtractor(get_preset(self.config.data.preset)).to(wave.device)
        return log_mel_l1(self._extractor, x, wave)

    def samples(self, model: nn.Module) -> dict[str, Audio]:
        """Audio the student makes from held-out mels (the EMA model, temperature 1)."""
        data = self.config.data
        if not data.samples:
            return {}
        batch, names = self.held_out()
        batch = {key: value.to(self.device) for key, value in batch.items()}
        excitation, _ = self._excitations(batch, random_phase=False)
        waves = model.sample(batch["mel"], excitation=excitation).clamp(-1, 1)
        rate = get_preset(data.preset).sample_rate
        return {name: Audio(wave, rate) for name, wave in zip(names, waves, strict=True)}
