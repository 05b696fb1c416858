"""The pitch predictor: log-mel frames -> F0 and voicing, for pitch-aware vocoders given only a mel.

A non-causal stack of dilated 1-D convolutions over the frames (as the vocoders see them: the preset's
log-mel, normalised when the preset normalises) gives, per frame t, logits z_{t,1..K} over K pitch bins
and one voicing logit u_t. The bins are evenly spaced in log-F0 from ``f0_min`` to ``f0_max``:

    c_i = ln f0_min + (i - 1) / (K - 1) · (ln f0_max - ln f0_min),   i = 1..K,

(K = 128 over 55-550 Hz: a bin is 1200·log2(10)/127 ≈ 31.4 cents). Pitch is classification, as in CREPE
(Kim et al. 2018): on a frame voiced by the tracker with F0 f, the target is a Gaussian in log-F0,

    y_i = exp(-(c_i - ℓ)² / 2σ²) / Σ_j exp(-(c_j - ℓ)² / 2σ²),   ℓ = clamp(ln f, c_1, c_K),
    σ = ``blur_cents`` · ln 2 / 1200,

and the loss is the cross-entropy -Σ_i y_i ln softmax(z_t)_i averaged over voiced frames, plus the
binary cross-entropy of sigmoid(u_t) against the tracker's voicing averaged over all frames. Regressing
log-F0 directly (L1) does far worse: it averages octave ambiguities into wrong pitches.

Decoding (CREPE's local weighted average): with p = softmax(z_t) and m = argmax_i p_i,

    ln f̂_t = Σ_{|i-m|≤R} p_i c_i / Σ_{|i-m|≤R} p_i,   R = ``decode_radius``,

so F0 is resolved far below a bin's width, and f̂_t is set to 0 where the voicing probability
sigmoid(u_t) < ``voicing_threshold``.

A model folder holds the predictor next to the vocoder's files: ``pitch.json`` ({"model":
PitchPredictorConfig dict, "mel": MelConfig dict or null}) and ``pitch.pt`` (a plain state_dict, read with
``torch.load(weights_only=True)``), written by ``PitchPredictor.save`` and read by ``PitchPredictor.load``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..audio.features import MelConfig
from ..errors import MissingFileError, WavesynthError
from ..model_config import ModelConfig
from ..train.checkpoint import load_fitting_state, read_state_dict, save_checkpoint

PITCH_CONFIG_FILE, PITCH_WEIGHTS_FILE = "pitch.json", "pitch.pt"


def _default_dilations(layers: int) -> tuple[int, ...]:
    """1, 2, 4, 8, 1, 2, 4, 8, ... (``layers`` of them)."""
    return tuple(2 ** (i % 4) for i in range(layers))


@dataclass
class PitchPredictorConfig(ModelConfig):
    """Size and output of a :class:`PitchPredictor` (the ``[model]`` table of a pitch recipe).

    ``dilations`` has one entry per layer (empty: 1, 2, 4, 8, 1, 2, 4, ...); ``bins`` log-F0 classes
    from ``f0_min`` to ``f0_max`` Hz; ``blur_cents`` the standard deviation of the Gaussian target
    (CREPE: 25 cents); ``decode_radius`` the bins either side of the argmax that the decoder averages;
    frames whose voicing probability is below ``voicing_threshold`` are unvoiced.
    """

    n_mels: int = 80
    channels: int = 192
    layers: int = 7
    kernel_size: int = 3
    dilations: tuple[int, ...] = ()
    bins: int = 128
    f0_min: float = 55.0
    f0_max: float = 550.0
    blur_cents: float = 25.0
    decode_radius: int = 4
    voicing_threshold: float = 0.5

    def __post_init__(self) -> None:
        self.require_ints(["n_mels", "channels", "layers"])
        if not isinstance(self.kernel_size, int) or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise WavesynthError("PitchPredictorConfig.kernel_size must be an odd positive integer (the net "
                                 f"is centred on each frame), got {self.kernel_size!r}")
        self.dilations = tuple(self.dilations)
        dilations = self.layer_dilations
        if len(dilations) != self.layers or any(not isinstance(d, int) or d < 1 for d in dilations):
            raise WavesynthError(f"PitchPredictorConfig.dilations must be {self.layers} positive integers "
                                 f"(one per layer; empty for the default), got {list(self.dilations)}")
        self.require_ints(["bins"], minimum=2)
        if not 0 < self.f0_min < self.f0_max:
            raise WavesynthError(f"PitchPredictorConfig needs 0 < f0_min < f0_max, got {self.f0_min}, "
                                 f"{self.f0_max}")
        if not self.blur_cents > 0:
            raise WavesynthError(f"PitchPredictorConfig.blur_cents must be > 0, got {self.blur_cents!r}")
        self.require_ints(["decode_radius"], minimum=0)
        if not 0 < self.voicing_threshold < 1:
            raise WavesynthError("PitchPredictorConfig.voicing_threshold must lie in (0, 1), got "
                                 f"{self.voicing_threshold!r}")

    @property
    def layer_dilations(self) -> tuple[int, ...]:
        """Each layer's dilation: ``dilations``, or the default for ``layers`` layers when it is empty."""
        return self.dilations or _default_dilations(self.layers)

    @property
    def bin_cents(self) -> float:
        """Width of one bin in cents."""
        return 1200 * math.log2(self.f0_max / self.f0_min) / (self.bins - 1)

    @property
    def receptive_field(self) -> int:
        """Frames one output frame sees (centred on it)."""
        return 1 + (self.kernel_size - 1) * sum(self.layer_dilations)


class _Block(nn.Module):
    """x + GELU(dilated conv(x)), length-preserving (padding dilation·(k-1)/2 both sides)."""

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation,
                              padding=dilation * (kernel_size - 1) // 2)

    def forward(self, x: Tensor) -> Tensor:
        return x + F.gelu(self.conv(x))


class PitchPredictor(nn.Module):
    """Log-mel (B, n_mels, F) -> per-frame log-F0 bin logits and a voicing logit; see the module doc.

    ``mel_config`` (optional, not a weight) records the features the predictor was trained on; ``save``
    and ``load`` carry it in ``pitch.json``.

    >>> predictor = PitchPredictor(PitchPredictorConfig(channels=16, layers=2, bins=32))
    >>> bin_logits, voicing_logit = predictor(torch.zeros(2, 80, 50))
    >>> tuple(bin_logits.shape), tuple(voicing_logit.shape)
    ((2, 32, 50), (2, 50))
    >>> f0, voiced_prob = predictor.predict(torch.zeros(2, 80, 50))
    >>> tuple(f0.shape), tuple(voiced_prob.shape)
    ((2, 50), (2, 50))
    >>> onehot = torch.full((1, 32, 1), -30.0)
    >>> onehot[0, 10, 0] = 30.0
    >>> hz = predictor.decode(onehot, torch.full((1, 1), 10.0))[0]
    >>> round(float(hz), 2) == round(float(predictor.bin_f0[10]), 2)
    True
    """

    def __init__(self, config: PitchPredictorConfig, mel_config: MelConfig | None = None) -> None:
        super().__init__()
        self.config = config
        self.mel_config = mel_config
        c = config
        self.input = nn.Conv1d(c.n_mels, c.channels, 1)
        self.blocks = nn.ModuleList(_Block(c.channels, c.kernel_size, d) for d in c.layer_dilations)
        self.output = nn.Conv1d(c.channels, c.bins + 1, 1)
        log_f0 = torch.linspace(math.log(c.f0_min), math.log(c.f0_max), c.bins, dtype=torch.float64)
        self.register_buffer("log_f0", log_f0.float(), persistent=False)

    @property
    def bin_f0(self) -> Tensor:
        """The bins' centre frequencies in Hz, (bins,)."""
        return self.log_f0.exp()

    def forward(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        """``mel`` (B, n_mels, F) -> (bin logits (B, bins, F), voicing logit (B, F))."""
        if mel.ndim != 3 or mel.shape[1] != self.config.n_mels:
            raise WavesynthError(f"expected a mel of shape (batch, {self.config.n_mels}, frames), got "
                                 f"{tuple(mel.shape)}")
        x = self.input(mel)
        for block in self.blocks:
            x = block(x)
        out = self.output(x)
        return out[:, :-1], out[:, -1]

    def target(self, f0: Tensor) -> Tensor:
        """The Gaussian-blurred target distribution over the bins for F0 ``f0`` (Hz, any shape (...,)):
        (..., bins), each summing to 1 (meaningless where f0 <= 0; the loss ignores those frames)."""
        sigma = self.config.blur_cents * math.log(2) / 1200
        ell = f0.float().clamp_min(1e-3).log().clamp(self.log_f0[0], self.log_f0[-1])
        return torch.softmax(-0.5 * ((self.log_f0 - ell.unsqueeze(-1)) / sigma) ** 2, dim=-1)

    def loss_terms(self, bin_logits: Tensor, voicing_logit: Tensor, f0: Tensor, voiced: Tensor,
                   mask: Tensor | None = None) -> dict[str, Tensor]:
        """The loss from the network's outputs: ``pitch`` (cross-entropy on frames voiced in ``voiced``),
        ``voicing`` (BCE on all frames) and their sum ``loss``; means over the frames of the batch that
        ``mask`` (B, F; default all) keeps. ``f0`` (B, F) in Hz, ``voiced`` (B, F) in {0, 1}."""
        bin_logits, voicing_logit = bin_logits.float(), voicing_logit.float()
        keep = torch.ones_like(voicing_logit) if mask is None else mask.float()
        voiced = voiced.float()
        log_p = torch.log_softmax(bin_logits, dim=1).transpose(1, 2)  # (B, F, bins)
        cross_entropy = -(self.target(f0) * log_p).sum(-1)
        weight = keep * (voiced > 0.5) * (f0 > 0)
        pitch = (cross_entropy * weight).sum() / weight.sum().clamp_min(1)
        bce = F.binary_cross_entropy_with_logits(voicing_logit, voiced, reduction="none")
        voicing = (bce * keep).sum() / keep.sum().clamp_min(1)
        return {"loss": pitch + voicing, "pitch": pitch, "voicing": voicing}

    def loss(self, mel: Tensor, f0: Tensor, voiced: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Training loss on a batch: ``mel`` (B, n_mels, F), tracker ``f0`` (B, F) Hz and ``voiced``
        (B, F); see ``loss_terms``."""
        return self.loss_terms(*self(mel), f0, voiced, mask)

    def decode(self, bin_logits: Tensor, voicing_logit: Tensor) -> tuple[Tensor, Tensor]:
        """(F0 in Hz (B, F), 0 where unvoiced; voicing probability (B, F)) from the network's outputs, by the
        local weighted average of log-F0 around the most likely bin."""
        p = torch.softmax(bin_logits.float(), dim=1)
        centre = p.argmax(dim=1, keepdim=True)
        index = torch.arange(self.config.bins, device=p.device).view(1, -1, 1)
        p = p * ((index - centre).abs() <= self.config.decode_radius)
        log_f0 = (p * self.log_f0.view(1, -1, 1)).sum(1) / p.sum(1).clamp_min(1e-30)
        voiced_prob = torch.sigmoid(voicing_logit.float())
        f0 = torch.where(voiced_prob >= self.config.voicing_threshold, log_f0.exp(), torch.zeros_like(log_f0))
        return f0, voiced_prob

    def predict(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        """``mel`` (B, n_mels, F) or (n_mels, F) -> (F0 Hz, 0 where unvoiced; voicing probability), each
        (B, F) or (F,); in eval mode without gradients (the module's mode is restored)."""
        single = mel.ndim == 2
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                f0, prob = self.decode(*self(mel.unsqueeze(0) if single else mel))
        finally:
            self.train(was_training)
        return (f0[0], prob[0]) if single else (f0, prob)

    # ---------------------------------------------------------------------------------- model folders

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``pitch.json`` and ``pitch.pt`` into ``folder`` (created if needed); returns the folder."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().clone().contiguous() for k, v in self.state_dict().items()}
        save_checkpoint(state, out / PITCH_WEIGHTS_FILE)
        info = {"model": self.config.to_dict(),
                "mel": self.mel_config.to_dict() if self.mel_config is not None else None}
        tmp = out / f".{PITCH_CONFIG_FILE}.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, out / PITCH_CONFIG_FILE)
        return out

    @classmethod
    def load(cls, folder: str | os.PathLike, map_location: str | torch.device = "cpu") -> PitchPredictor:
        """The predictor saved in ``folder`` by ``save``, in eval mode; one-line errors for missing, corrupt
        or mismatched files. Never executes code from the files."""
        folder = Path(folder)
        config_path, weights_path = folder / PITCH_CONFIG_FILE, folder / PITCH_WEIGHTS_FILE
        for path in (config_path, weights_path):
            if not path.is_file():
                raise MissingFileError(f"{path}: no such file (a pitch predictor is {PITCH_CONFIG_FILE} + "
                                       f"{PITCH_WEIGHTS_FILE})")
        try:
            info = json.loads(config_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise WavesynthError(f"{config_path}: not valid JSON ({error})") from None
        if not isinstance(info, dict) or "model" not in info:
            raise WavesynthError(f"{config_path}: expected an object with a 'model' entry")
        mel = info.get("mel")
        predictor = cls(PitchPredictorConfig.from_dict(info["model"]),
                        MelConfig.from_dict(mel) if mel is not None else None)
        load_fitting_state(predictor, read_state_dict(weights_path), weights_path, PITCH_CONFIG_FILE)
        return predictor.to(map_location).eval()
