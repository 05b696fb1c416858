"""The WaveNet teacher: p(x | c) = Π_t p(x_t | x_<t, c) with a mel-spectrogram c, evaluated in one pass."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import WavesynthError
from .config import WaveNetConfig
from .distributions import make_head
from .layers import ConditioningUpsampler, WaveNetStack, pointwise, shift_right


class WaveNet(nn.Module):
    """Scalar input -> 1x1 -> residual stack -> ReLU, 1x1, ReLU, 1x1 -> head parameters.

    The input is shifted right by one sample, so the parameters at t depend on x_<t (and all of the mel):
    one teacher-forced pass gives p(x_t | x_<t, c) for every t, differentiably in x.

    >>> import torch
    >>> from wavesynth.wavenet import WaveNetConfig
    >>> model = WaveNet(WaveNetConfig(layers=4, cycles=2, residual_channels=8, gate_channels=8,
    ...                               skip_channels=8, n_mels=5, hop_length=4, upsample_scales=(2, 2)))
    >>> mel = torch.randn(2, 5, 3)  # (batch, n_mels, frames): 3 frames of 4 samples
    >>> tuple(model.log_prob(torch.zeros(2, 12), mel).shape), model.receptive_field
    ((2, 12), 13)
    >>> from wavesynth.wavenet import generate  # cached autoregressive sampling
    >>> tuple(generate(model, mel, generator=torch.Generator().manual_seed(0)).shape)
    (2, 12)
    """

    def __init__(self, config: WaveNetConfig):
        super().__init__()
        self.config = config
        self.head = make_head(config.head, **config.head_options)
        self.input_conv = nn.Conv1d(1, config.residual_channels, 1)
        self.upsampler = ConditioningUpsampler(config.upsample_scales)
        self.speaker_embedding = (
            nn.Embedding(config.n_speakers, config.speaker_dim) if config.n_speakers else None
        )
        self.stack = WaveNetStack(
            config.layers,
            config.cycles,
            config.kernel_size,
            config.residual_channels,
            config.gate_channels,
            config.n_mels,
            skip_channels=config.skip_channels,
            global_channels=config.speaker_dim if config.n_speakers else 0,
            excitation_channels=config.excitation_channels,
        )
        self.output_hidden = nn.Conv1d(config.skip_channels, config.skip_channels, 1)
        self.output = nn.Conv1d(config.skip_channels, self.head.num_params, 1)

    @property
    def receptive_field(self) -> int:
        """Samples of the past that the parameters at t depend on (plus the current input slot)."""
        return self.stack.receptive_field

    @property
    def chunk_context_frames(self) -> tuple[int, int]:
        """(left, right) mel frames around a chunk's own frames for chunked generation: the samples of the
        left frames (Q + ceil(R / hop), R = ``receptive_field``) are fed as a known prefix, and the
        conditioning at a sample depends on mel frames up to Q = ``upsampler.context`` either side."""
        Q = self.upsampler.context
        return Q + math.ceil(self.receptive_field / self.config.hop_length), Q

    def speaker_vector(self, mel: Tensor, speaker: Tensor | None) -> Tensor | None:
        """The global conditioning (B, speaker_dim) for speaker ids (B,), or None without speakers."""
        if self.speaker_embedding is None:
            if speaker is not None:
                raise WavesynthError("this WaveNet has no speakers (n_speakers = 0); pass speaker=None")
            return None
        if speaker is None:
            raise WavesynthError(f"this WaveNet needs speaker ids in [0, {self.config.n_speakers})")
        return self.speaker_embedding(speaker.reshape(-1).to(mel.device).expand(mel.shape[0]))

    def _check(self, x: Tensor, mel: Tensor) -> None:
        if mel.dim() != 3 or mel.shape[1] != self.config.n_mels:
            raise WavesynthError(f"mel must be (batch, {self.config.n_mels}, frames), got {tuple(mel.shape)}")
        if x.dim() != 2 or x.shape[0] != mel.shape[0] or x.shape[1] != mel.shape[2] * self.config.hop_length:
            raise WavesynthError(
                f"x must be (batch, frames * hop_length) = ({mel.shape[0]}, "
                f"{mel.shape[2] * self.config.hop_length}), got {tuple(x.shape)}"
            )

    def distribution_params(
        self, x: Tensor, mel: Tensor, speaker: Tensor | None = None, excitation: Tensor | None = None
    ) -> Tensor:
        """Raw head parameters (B, P, T) of p(x_t | x_<t, c) for x (B, T), mel (B, n_mels, T / hop) and,
        for a model with an excitation, e (B, E, T) (``wavesynth.pitch.SineExcitation``)."""
        self._check(x, mel)
        w, b = self.input_conv.weight, self.input_conv.bias
        h = torch.addcmul(b.view(1, -1, 1), w.view(1, -1, 1), shift_right(x.unsqueeze(1)))
        _, skips = self.stack(h, mel, self.upsampler, self.speaker_vector(mel, speaker), excitation)
        hidden = pointwise(self.output_hidden.weight, skips.relu(), self.output_hidden.bias.view(1, -1, 1))
        return pointwise(self.output.weight, hidden.relu_(), self.output.bias.view(1, -1, 1))

    def log_prob(
        self, x: Tensor, mel: Tensor, speaker: Tensor | None = None, excitation: Tensor | None = None
    ) -> Tensor:
        """log p(x_t | x_<t, c) per sample, (B, T)."""
        return self.head.log_prob(self.distribution_params(x, mel, speaker, excitation), x)

    forward = log_prob

    def bits_per_sample(self, log_prob: Tensor, lengths: Tensor | None = None) -> Tensor:
        """-log2 P(x_t) averaged over samples (the first ``lengths[b]`` samples of row b), on 16-bit bins.

        For the continuous heads the density is turned into a bin probability by the 16-bit bin width.
        """
        log_p = log_prob + self.head.bin_log_width
        if lengths is None:
            return -log_p.mean() / math.log(2)
        mask = torch.arange(log_p.shape[1], device=log_p.device) < lengths.to(log_p.device).unsqueeze(1)
        return -(log_p * mask).sum() / mask.sum() / math.log(2)
