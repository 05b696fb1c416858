"""``Vocoder``: mel-spectrogram -> audio with a trained model (a student in one parallel pass, a teacher
sample by sample), from a model folder or a training checkpoint (``wavesynth.pretrained``).

Chunked synthesis. Output sample t depends on the noise z_{t-R..t} (student) or the samples x_{t-R..t-1}
(teacher), R the receptive field, and, through the mel upsampler, on mel frames up to Q beyond the frames it
uses. So the mel is cut into chunks of ``chunk_frames`` frames [a, b); each is run on frames [a - L, b + Q)
(clipped to the mel; (L, Q) = the model's ``chunk_context_frames``, L = Q + ceil(R / hop)) and only its own
samples [a·hop, b·hop) are kept. The model gets the samples already made for frames [a - L, a) as a known
prefix: a teacher continues them (teacher forcing) and samples from frame a on. The noise is a function of
the sample position only (block j of ``NOISE_BLOCK`` samples is drawn from a generator seeded with
(seed, j)), so every chunk sees the same noise as the whole utterance would: chunked output equals
unchunked output to float precision, memory is bounded by the chunk size, and an utterance in a batch gets
exactly what it gets alone (a batch is right-padded with zero frames, which is what the upsampler assumes
outside an utterance anyway). The Vocoder drives every model type through ``wavesynth.synthesis``'s
``SynthesisModel``.

Pitch. A model with an excitation (``config.excitation = "sine"``) is driven by F0: predicted from the mel
by the folder's pitch predictor (``pitch``), or given (``synthesize(f0=...)``, e.g. from a TTS acoustic
model), times ``pitch_scale``. The excitation's frequency and float64 phase are computed once for the
whole utterance and each chunk takes its slice, so chunked output still equals unchunked output.
"""

from __future__ import annotations

import numbers
import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .audio import MelExtractor
from .audio.convention import convention_warning
from .errors import WavesynthError
from .pitch.excitation import SineExcitation
from .pretrained import ModelInfo, load_pretrained
from .synthesis import SynthesisModel, synthesis_precision
from .train.precision import check_precision

CHUNK_FRAMES = 512
NOISE_BLOCK = 1 << 16
MAX_TEMPERATURE = 10.0  # synthesize's largest temperature (1: the trained spread; a student gives NaN at 1e6)

MelInput = np.ndarray | Tensor


def _as_tensor(x: MelInput, what: str) -> Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype.kind != "f":
            raise WavesynthError(f"expected a float {what}, got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, Tensor):
        raise WavesynthError(f"expected a {what} as a numpy array or torch tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise WavesynthError(f"expected a float {what}, got dtype {x.dtype}")
    return x.detach()


class Vocoder:
    """A trained model with its feature preset: ``mel(wave)`` and ``synthesize(mel)``.

    ``synthesis`` is the model in its adapter (``wavesynth.synthesis``), ``info`` the model folder's
    config.json (``wavesynth.pretrained.ModelInfo``: its kind, mel preset and statistics).
    ``sample_rate``, ``hop_length``, ``n_mels`` and ``config`` (the ``MelConfig``) describe the features;
    ``stats`` are the corpus statistics of a normalising preset (else None); ``chunk_frames`` bounds the
    frames the model runs at once. A model with an excitation takes F0 from ``pitch_predictor`` (a
    ``PitchPredictor``) or from the caller. ``precision`` ("fp32", "bf16" or "auto":
    ``synthesis_precision``) is the model's arithmetic: in bf16 its weights and activations are bfloat16
    but for the parts that stay float32 (the adapter's ``cast``).

    A shipped model (in the package's ``pretrained/`` folder: no download):

    >>> import numpy as np
    >>> vocoder = Vocoder.from_pretrained("allison-16k-student", device="cpu", precision="fp32")
    >>> vocoder.kind, vocoder.sample_rate, vocoder.hop_length, vocoder.n_mels
    ('student', 16000, 256, 80)
    >>> t = np.arange(2560) / 16000  # 0.16 s: 10 frames of 256 samples
    >>> mel = vocoder.mel((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    >>> mel.shape
    (80, 10)
    >>> wave = vocoder.synthesize(mel, seed=0)
    >>> wave.shape, wave.dtype, bool(np.abs(wave).max() <= 1)
    ((2560,), dtype('float32'), True)
    """

    def __init__(
        self,
        synthesis: SynthesisModel,
        info: ModelInfo,
        chunk_frames: int = CHUNK_FRAMES,
        pitch_predictor: nn.Module | None = None,
        precision: str = "fp32",
    ) -> None:
        config, stats, model = info.mel, info.mel_stats, synthesis.model
        if config.normalize and stats is None:
            raise WavesynthError(f"preset {config.name!r} normalises features: the model needs its "
                                 "statistics")
        if (model.config.n_mels, model.config.hop_length) != (config.n_mels, config.hop_length):
            raise WavesynthError(f"model (n_mels, hop) = ({model.config.n_mels}, {model.config.hop_length}) "
                                 f"does not match preset {config.name!r} ({config.n_mels}, "
                                 f"{config.hop_length})")
        self.synthesis, self.info, self.config, self.stats = synthesis, info, config, stats
        device = next(model.parameters()).device
        self.precision = synthesis_precision(precision, synthesis, device)
        synthesis.cast(self.precision).eval()
        self.chunk_frames = chunk_frames
        self.extractor = MelExtractor(config, stats).to(device)
        excited = bool(model.config.excitation_channels)
        self.excitation = SineExcitation.for_mel(model.config.harmonics, config) if excited else None
        self.pitch_predictor = None if pitch_predictor is None else pitch_predictor.eval().to(device)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        precision: str = "auto",
    ) -> Vocoder:
        """Load a shipped model by name (``list_pretrained()``; None: ``default_model()``), a model folder,
        or a training checkpoint (.pt: its EMA weights; the kind its run trains), onto ``device``
        (default: CUDA when available, else CPU), computing in ``precision`` ("auto", "fp32" or "bf16"; see
        ``synthesis_precision``). See ``wavesynth.pretrained.load_pretrained``."""
        check_precision(precision)
        info, synthesis, predictor = load_pretrained(name_or_path)
        synthesis.model.to(_device(device))
        return cls(synthesis, info, pitch_predictor=predictor, precision=precision)

    @property
    def model(self) -> nn.Module:
        return self.synthesis.model

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def n_mels(self) -> int:
        return self.config.n_mels

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> Vocoder:
        """Move the model and the feature extractor to ``device``; returns self."""
        device = _device(device)
        self.model.to(device)
        self.extractor.to(device)
        return self

    def mel(self, wave: MelInput) -> np.ndarray:
        """The model's features of ``wave`` ((T,) or (B, T) float at ``sample_rate``): float32
        (n_mels, ceil(T / hop)) or (B, n_mels, ceil(T / hop)), normalised when the preset says so."""
        wave = _as_tensor(wave, "waveform")
        stereo = wave.dim() == 2 and wave.shape[1] == 2 and wave.shape[0] > 2  # (T, 2), not 2-sample clips
        if wave.dim() not in (1, 2) or stereo:
            hint = ": stereo? average the channels, e.g. wave.mean(axis=1)" if stereo else ""
            raise WavesynthError("expected a mono waveform (T,) or a batch (B, T), got "
                                 f"{tuple(wave.shape)}{hint}")
        if not wave.isfinite().all():
            raise WavesynthError("waveform holds NaN or infinite samples")
        with torch.inference_mode():
            return self.extractor(wave.to(self.device, torch.float32)).cpu().numpy()

    def _check_mel(self, mel: MelInput) -> Tensor:
        """One mel as a float32 (n_mels, frames) tensor; one-line ValueErrors for what does not fit."""
        mel = _as_tensor(mel, "mel-spectrogram")
        n = self.n_mels
        if mel.dim() != 2:
            raise WavesynthError(f"expected a mel of shape (n_mels={n}, frames), got {tuple(mel.shape)}")
        if mel.shape[0] != n:
            if mel.shape[1] == n:
                raise WavesynthError(f"expected (n_mels={n}, frames), got ({mel.shape[0]}, {n}): transpose "
                                     "it")
            raise WavesynthError(f"expected (n_mels={n}, frames) for preset {self.config.name!r}, got "
                                 f"{mel.shape[0]} mel bins")
        if mel.shape[1] == 0:
            raise WavesynthError(f"empty mel (n_mels={n}, 0 frames)")
        if not mel.isfinite().all():
            raise WavesynthError("mel holds NaN or infinite values")
        reason = convention_warning(mel, self.config)
        if reason:
            warnings.warn(reason, stacklevel=3)
        return mel.float()

    def pitch(self, mel: MelInput) -> np.ndarray:
        """The F0 the model uses for ``mel`` (n_mels, frames): float32 (frames,) in Hz, 0 where unvoiced,
        from the model folder's pitch predictor."""
        if self.excitation is None:
            raise WavesynthError(f"{self.name or 'this model'} has no excitation, so it uses no F0")
        if self.pitch_predictor is None:
            raise WavesynthError(f"{self.name or 'this model'} has no pitch predictor (pitch.json and "
                                 "pitch.pt in its folder): pass f0, or export the model with --pitch")
        mel = self._check_mel(mel).to(self.device)
        with torch.inference_mode():
            return self.pitch_predictor.predict(mel)[0].float().cpu().numpy()

    def synthesize(
        self,
        mel: MelInput | Sequence[MelInput],
        temperature: float = 1.0,
        seed: int = 0,
        f0: MelInput | Sequence[MelInput] | None = None,
        pitch_scale: float = 1.0,
    ) -> np.ndarray | list[np.ndarray]:
        """Audio from mel-spectrograms: float32 (frames·hop,) for one (n_mels, frames) mel, (B, frames·hop)
        for a (B, n_mels, frames) array, and a list for a list of mels of any lengths; clipped to [-1, 1].
        The noise comes from ``seed``; ``temperature`` (0 to ``MAX_TEMPERATURE``) scales it (student) or each
        step's spread (teacher). Both run in chunks (bounded memory); a teacher generates sample by sample
        (slow).

        For a model with an excitation, ``f0`` (Hz, 0 = unvoiced; (frames,) per mel, batched like ``mel``)
        replaces the predicted F0 (``pitch``), and ``pitch_scale`` multiplies the F0 used: a pitch shift
        that keeps the mel's spectral envelope."""
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
                or not 0 <= temperature <= MAX_TEMPERATURE:
            raise WavesynthError(f"temperature must be a number in [0, {MAX_TEMPERATURE:g}], got "
                                 f"{temperature!r}")
        temperature = float(temperature)
        if isinstance(mel, np.ndarray | Tensor):
            if mel.ndim == 3:
                if mel.shape[0] == 0:
                    raise WavesynthError(f"empty batch {tuple(mel.shape)}: no mel to synthesise")
                mels = [self._check_mel(m) for m in mel]
                f0s = self._check_f0s(f0, mels, pitch_scale)
                return np.stack(self._synthesize(mels, temperature, seed, f0s))
            mels = [self._check_mel(mel)]
            f0s = self._check_f0s(None if f0 is None else [f0], mels, pitch_scale)
            return self._synthesize(mels, temperature, seed, f0s)[0]
        if not isinstance(mel, Sequence) or not mel:
            got = "an empty list" if isinstance(mel, Sequence) else type(mel).__name__
            raise WavesynthError("expected a mel-spectrogram, a batch of them or a non-empty list of them, "
                                 f"got {got}")
        mels = [self._check_mel(m) for m in mel]
        return self._synthesize(mels, temperature, seed, self._check_f0s(f0, mels, pitch_scale))

    def _check_f0s(self, f0: Sequence[MelInput] | MelInput | None, mels: list[Tensor],
                   pitch_scale: float) -> list[Tensor] | None:
        """Each mel's F0 (given or predicted) times ``pitch_scale``, float64 (frames,); None without an
        excitation. One-line ValueErrors for what does not fit."""
        if self.excitation is None:
            if f0 is not None or pitch_scale != 1.0:
                raise WavesynthError(f"{self.name or 'this model'} has no excitation (excitation = 'none'): "
                                     "f0 and pitch_scale do not apply")
            return None
        if isinstance(pitch_scale, bool) or not isinstance(pitch_scale, int | float) \
                or not np.isfinite(pitch_scale) or pitch_scale <= 0:
            raise WavesynthError(f"pitch_scale must be a positive number, got {pitch_scale!r}")
        if f0 is None:
            return [torch.from_numpy(self.pitch(m)).double() * pitch_scale for m in mels]
        if len(f0) != len(mels):
            raise WavesynthError(f"got {len(f0)} F0 tracks for {len(mels)} mels")
        nyquist = self.sample_rate / 2
        tracks = []
        for track, m in zip(f0, mels, strict=True):
            track = _as_tensor(track, "F0 track").double()
            if track.dim() != 1 or track.shape[0] != m.shape[1]:
                raise WavesynthError(f"f0 must be (frames,) = ({m.shape[1]},) like its mel, got "
                                     f"{tuple(track.shape)}")
            if not track.isfinite().all():
                raise WavesynthError("f0 holds NaN or infinite values")
            if (track < 0).any():
                raise WavesynthError(f"f0 holds negative values (min {float(track.min()):.1f} Hz); use 0 for "
                                     "unvoiced frames")
            track = track * pitch_scale
            if (track >= nyquist).any():
                raise WavesynthError(f"f0 reaches {float(track.max()):.0f} Hz (after pitch_scale), at or "
                                     f"above Nyquist ({nyquist:.0f} Hz)")
            tracks.append(track.to(self.device))
        return tracks

    def _synthesize(self, mels: list[Tensor], temperature: float, seed: int,
                    f0s: list[Tensor] | None) -> list[np.ndarray]:
        frames = [m.shape[1] for m in mels]
        batch = torch.zeros(len(mels), self.n_mels, max(frames), device=self.device)
        for row, m in zip(batch, mels, strict=True):
            row[:, : m.shape[1]] = m
        source = None
        if f0s is not None:
            f0 = torch.zeros(len(mels), max(frames), dtype=torch.float64, device=self.device)
            for row, track in zip(f0, f0s, strict=True):
                row[: track.shape[0]] = track
            frequency = self.excitation.frequency(f0)
            source = frequency, self.excitation.phase(frequency)
        with torch.inference_mode():
            audio = self._chunked(batch, temperature, seed, source)
        return [audio[i, : n * self.hop_length].clip(-1.0, 1.0) for i, n in enumerate(frames)]

    def _excitation(self, source: tuple[Tensor, Tensor] | None, start: int, stop: int) -> Tensor | None:
        """The excitation of samples [start, stop), from the whole utterance's frequency and phase."""
        if source is None:
            return None
        frequency, phase = source
        return self.excitation.signal(frequency[:, start:stop], phase[:, start:stop])

    def _noise(self, start: int, stop: int, seed: int) -> Tensor:
        """The noise for samples [start, stop) (the same for every utterance), on the device:
        (1, ..., stop - start), as the model draws it."""
        blocks = []
        for j in range(start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK + 1):
            block_seed = int(np.random.SeedSequence([seed, j]).generate_state(1)[0])
            blocks.append(self.synthesis.draw_noise(NOISE_BLOCK, torch.Generator().manual_seed(block_seed)))
        offset = start - (start // NOISE_BLOCK) * NOISE_BLOCK
        return torch.cat(blocks, -1)[..., offset : offset + stop - start].to(self.device)

    def _chunks(self, total: int):
        """(a, b, lo, hi) per chunk: its own frames [a, b) and the frames [lo, hi) it runs on."""
        left, right = self.synthesis.chunk_context_frames
        for a in range(0, total, self.chunk_frames):
            b = min(a + self.chunk_frames, total)
            yield a, b, max(a - left, 0), min(b + right, total)

    def _chunked(self, mel: Tensor, temperature: float, seed: int,
                 source: tuple[Tensor, Tensor] | None) -> np.ndarray:
        """(B, frames·hop) chunk after chunk (module docstring), assembled on the CPU: each chunk gets the
        samples of its left context, already made, as its prefix."""
        hop = self.hop_length
        out = torch.empty(mel.shape[0], mel.shape[-1] * hop)
        for a, b, lo, hi in self._chunks(mel.shape[-1]):
            noise = self._noise(lo * hop, hi * hop, seed)
            noise = noise.expand(mel.shape[0], *noise.shape[1:])
            prefix = out[:, lo * hop : a * hop].to(self.device)
            excitation = self._excitation(source, lo * hop, hi * hop)
            x = self.synthesis.synthesize(mel[..., lo:hi], noise, excitation, temperature, prefix)
            out[:, a * hop : b * hop] = x[:, (a - lo) * hop : (b - lo) * hop].cpu()
        return out.numpy()

    def __repr__(self) -> str:
        return (f"Vocoder({self.name!r}, kind={self.kind}, preset={self.config.name}, "
                f"sample_rate={self.sample_rate}, device={self.device}, precision={self.precision})")


def _device(device: str | torch.device | None) -> torch.device:
    """``device`` checked (None: CUDA when available, else CPU); ValueError for an unknown or absent one."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise WavesynthError(f"unknown device {str(device)!r} ({error})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise WavesynthError(f"device {str(device)!r}: CUDA is not available on this machine (use 'cpu')")
    return device
