"""``Vocoder``: mel-spectrogram -> audio with a trained student (one parallel pass) or teacher (sequential).

A model folder (the shipped ones are ``pretrained/<name>/`` at the top of the repository)::

    config.json    {"name", "kind": "student" | "teacher", "model": StudentConfig or WaveNetConfig dict,
                    "mel": MelConfig dict, "mel_stats": MelStats dict or null, "training": {facts},
                    "weights_sha256": model.pt's sha256, checked on load (optional)}
    model.pt       the weights: a plain state_dict, read with torch.load(weights_only=True)
    pitch.json     for a model with an excitation: its F0 predictor (``wavesynth.pitch.PitchPredictor``)
    pitch.pt
    MODEL_CARD.md  what it was trained on, how, and how well it does

Loading never executes code from a file. ``export_pretrained`` makes such a folder from a training
checkpoint (its EMA weights).

Chunked synthesis. Output sample t depends on the noise z_{t-R..t} (student) or the samples x_{t-R..t-1}
(teacher), R the receptive field, and, through the mel upsampler, on mel frames up to Q beyond the frames it
uses. So the mel is cut into chunks of ``chunk_frames`` frames [a, b); each is run on frames [a - L, b + Q)
(clipped to the mel) with L = Q + ceil(R / hop) and only its own samples [a·hop, b·hop) are kept. The
teacher is fed the samples it already generated for frames [a - L, a) as a known prefix (teacher forcing)
and samples from frame a on. The noise is a function of the sample position only (block j of
``NOISE_BLOCK`` samples is drawn from a generator seeded with (seed, j)), so every chunk sees the same
noise as the whole utterance would: chunked output equals unchunked output to float precision, memory is
bounded by the chunk size, and an utterance in a batch gets exactly what it gets alone (a batch is
right-padded with zero frames, which is what the upsampler assumes outside an utterance anyway).

Pitch. A model with an excitation (``config.excitation = "sine"``) is driven by F0: predicted from the mel
by the folder's pitch predictor (``pitch``), or given (``synthesize(f0=...)``, e.g. from a TTS acoustic
model), times ``pitch_scale``. The excitation's frequency and float64 phase are computed once for the
whole utterance and each chunk takes its slice, so chunked output still equals unchunked output.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .audio import MelConfig, MelExtractor, MelStats, get_preset
from .audio.cache import FeatureCache
from .errors import MissingFileError, WavesynthError
from .pitch.excitation import SineExcitation
from .pitch.predictor import PITCH_CONFIG_FILE, PitchPredictor
from .train.checkpoint import load_fitting_state, read_state_dict
from .train.precision import check_precision, resolve_precision


def _pretrained_dir() -> Path:
    """The shipped models: ``pretrained/`` of a source checkout (or editable install), else the copy a wheel
    installs under ``<prefix>/share/wavesynth/pretrained``."""
    checkout = Path(__file__).resolve().parent.parent / "pretrained"
    installed = Path(sys.prefix) / "share" / "wavesynth" / "pretrained"
    return installed if not checkout.is_dir() and installed.is_dir() else checkout


PRETRAINED_DIR = _pretrained_dir()
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.pt"
HASH_KEY = "weights_sha256"
KINDS = ("student", "teacher")
CHUNK_FRAMES = 512
DEFAULT_MODEL = "ljspeech-22k-student"  # the 22.05 kHz HiFi-GAN convention, the most common one
NOISE_BLOCK = 1 << 16
MAX_TEMPERATURE = 10.0  # synthesize's largest temperature (1: the trained spread; a student gives NaN at 1e6)

MelInput = np.ndarray | Tensor


def list_pretrained() -> list[str]:
    """Names of the shipped models (folders of ``pretrained/`` holding a config.json), sorted."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / CONFIG_FILE).is_file())


def default_model() -> str | None:
    """The model ``from_pretrained()`` loads: ``DEFAULT_MODEL`` when shipped, else the first shipped student
    by name (folders whose config.json cannot be read are no student), else the first shipped model; None
    when nothing is shipped."""
    names = list_pretrained()
    if DEFAULT_MODEL in names:
        return DEFAULT_MODEL
    students = [n for n in names if _kind(PRETRAINED_DIR / n) == "student"]
    return (students or names or [None])[0]


def _kind(folder: Path) -> str | None:
    """The kind in a model folder's config.json; None when it cannot be read."""
    try:
        return _read_config(folder / CONFIG_FILE)["kind"]
    except (OSError, ValueError):
        return None


def pretrained_config(name_or_path: str | os.PathLike | None = None) -> dict:
    """The config.json of a shipped model (by name; None: ``default_model()``) or a model folder, weights
    unread."""
    path = _resolve(name_or_path)
    if path.is_file():
        raise WavesynthError(f"{path}: a training checkpoint, not a model folder")
    return _read_config(path / CONFIG_FILE)


def _build_model(kind: str, model_config: dict) -> nn.Module:
    if kind == "student":
        from .parallel import ParallelWaveNet, StudentConfig

        return ParallelWaveNet(StudentConfig.from_dict(model_config))
    from .wavenet import WaveNet, WaveNetConfig

    config = WaveNetConfig.from_dict(model_config)
    if config.n_speakers:
        raise WavesynthError("speaker-conditioned teachers (n_speakers > 0) cannot be used as a Vocoder")
    return WaveNet(config)


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file (a model folder holds {CONFIG_FILE}, {WEIGHTS_FILE})")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WavesynthError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(info, dict):
        raise WavesynthError(f"{path}: expected a JSON object, got {type(info).__name__}")
    missing = [key for key in ("name", "kind", "model", "mel", "mel_stats") if key not in info]
    if missing:
        raise WavesynthError(f"{path}: missing keys {missing}")
    if info["kind"] not in KINDS:
        raise WavesynthError(f"{path}: kind must be one of {KINDS}, got {info['kind']!r}")
    try:
        MelConfig.from_dict(info["mel"])
    except (TypeError, ValueError) as error:
        raise WavesynthError(f"{path}: bad mel settings ({error})") from None
    return info


def _sha256(path: Path) -> str:
    """The hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_hash(info: dict, weights: Path) -> None:
    """A one-line ValueError when config.json records a ``weights_sha256`` that ``weights`` does not have
    (a damaged or replaced file); nothing to check without the key."""
    expected = info.get(HASH_KEY)
    if expected is None:
        return
    actual = _sha256(weights)
    if actual != expected:
        raise WavesynthError(f"{weights}: its sha256 {actual[:16]}… is not {HASH_KEY} {str(expected)[:16]}… "
                             f"in {CONFIG_FILE}: the file is damaged or was replaced (export or download it "
                             "again)")


def _stats_dict(stats: MelStats) -> dict:
    return {"count": stats.count, "mean": stats.mean.tolist(), "m2": stats.m2.tolist()}


def _stats_from_dict(data: dict | None) -> MelStats | None:
    if data is None:
        return None
    mean, m2 = (np.asarray(data[key], np.float64) for key in ("mean", "m2"))
    return MelStats(int(data["count"]), mean, m2)


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


def _expected_range(config: MelConfig) -> tuple[float, float]:
    """Lowest and highest un-normalised log-mel the preset can produce: the log floor, and the log of the
    largest filterbank row sum times the window sum (a full-scale input's bound on every STFT bin)."""
    from .audio.features import mel_filterbank

    log = np.log if config.log == "ln" else np.log10
    top = mel_filterbank(config).sum(1).max() * np.hanning(config.win_length + 1)[:-1].sum()
    return float(log(config.log_floor)), float(log(top))


def convention_warning(mel: Tensor, config: MelConfig) -> str | None:
    """Why ``mel`` (n_mels, frames) looks like another feature convention than ``config``'s, or None.

    Checks, in turn: a mean far from 0 for a normalising preset; for the others, per-bin mean ≈ 0 and
    std ≈ 1 (a normalised mel, over 20 frames or more); values outside the preset's range; a clamp floor
    (at least 0.1 % of the values, and 8 of them, equal to the minimum) at another level than the
    preset's; a minimum above half the floor (a compressed scale, e.g. log10 for ln: speech always has
    quiet bins).
    """
    mel = mel.double()
    low, high = float(mel.min()), float(mel.max())
    unit = "ln" if config.log == "ln" else "log10"
    expects = f"preset {config.name!r} expects {unit} of a mel magnitude clamped at {config.log_floor:g}"
    if config.normalize:
        mean = float(mel.mean())
        if abs(mean) > 2.0:
            return (f"mel has mean {mean:.2f}, but preset {config.name!r} expects mean-variance normalised "
                    f"features (mean ≈ 0): pass the mel from Vocoder.mel()")
        return None
    if mel.shape[1] >= 20:
        means, stds = mel.mean(1), mel.std(1)
        if float(means.abs().max()) < 0.5 and float(((stds - 1).abs() < 0.5).double().mean()) > 0.9:
            return f"mel looks mean-variance normalised, but {expects} (un-normalised)"
    floor, top = _expected_range(config)
    if low < floor - 0.5 or high > top + 0.5:
        return (f"mel values lie in [{low:.2f}, {high:.2f}], outside [{floor:.2f}, {top:.2f}]: {expects} "
                f"(is it dB, log10 or another preset's mel?)")
    at_min = int((mel <= low + 1e-4).sum())
    if at_min >= max(8, mel.numel() // 1000) and abs(low - floor) > 0.5:
        return f"mel is clamped at {low:.2f}, but {expects} (= {floor:.2f}): is it another preset's mel?"
    if low > floor / 2:
        return (f"mel never goes below {low:.2f}, while speech in this convention reaches towards "
                f"{floor:.2f}: {expects} (is it log10 or another preset's mel?)")
    return None


class Vocoder:
    """A trained model with its feature preset: ``mel(wave)`` and ``synthesize(mel)``.

    ``sample_rate``, ``hop_length``, ``n_mels`` and ``config`` (the ``MelConfig``) describe the features;
    ``stats`` are the corpus statistics of a normalising preset (else None); ``info`` is the model folder's
    config.json; ``chunk_frames`` bounds the frames the model runs at once. A model with an excitation
    takes F0 from ``pitch_predictor`` (a ``PitchPredictor``) or from the caller. ``precision`` ("fp32",
    "bf16" or "auto": ``synthesis_precision``) is the model's arithmetic: in bf16 its weights and
    activations are bfloat16 but for the parts that stay float32 (``cast_for_synthesis``).

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
        model: nn.Module,
        kind: str,
        config: MelConfig,
        stats: MelStats | None = None,
        info: dict | None = None,
        chunk_frames: int = CHUNK_FRAMES,
        pitch_predictor: nn.Module | None = None,
        precision: str = "fp32",
    ) -> None:
        if kind not in KINDS:
            raise WavesynthError(f"kind must be one of {KINDS}, got {kind!r}")
        if config.normalize and stats is None:
            raise WavesynthError(f"preset {config.name!r} normalises features: the model needs its "
                                 "statistics")
        if (model.config.n_mels, model.config.hop_length) != (config.n_mels, config.hop_length):
            raise WavesynthError(f"model (n_mels, hop) = ({model.config.n_mels}, {model.config.hop_length}) "
                                 f"does not match preset {config.name!r} ({config.n_mels}, "
                                 f"{config.hop_length})")
        self.kind, self.config, self.stats = kind, config, stats
        self.precision = synthesis_precision(precision, kind, next(model.parameters()).device)
        self.model = cast_for_synthesis(model, kind, self.precision).eval()
        self.info = info or {"name": "", "kind": kind}
        self.chunk_frames = chunk_frames
        param = next(model.parameters())
        self.extractor = MelExtractor(config, stats).to(param.device)
        excited = bool(model.config.excitation_channels)
        self.excitation = SineExcitation.for_mel(model.config.harmonics, config) if excited else None
        self.pitch_predictor = None if pitch_predictor is None else pitch_predictor.eval().to(param.device)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        precision: str = "auto",
    ) -> Vocoder:
        """Load a shipped model by name (``list_pretrained()``; None: ``default_model()``), a model folder,
        or a training checkpoint (.pt: its EMA weights; a student if the run names a teacher), onto
        ``device`` (default: CUDA when available, else CPU), computing in ``precision`` ("auto", "fp32"
        or "bf16"; see ``synthesis_precision``)."""
        check_precision(precision)
        path = _resolve(name_or_path)
        predictor = None
        if path.is_file():
            info, model = _from_checkpoint(path, None, f"{path.parent.name}/{path.name}")
        else:
            info = _read_config(path / CONFIG_FILE)
            try:
                model = _build_model(info["kind"], info["model"])
            except (TypeError, KeyError, ValueError) as error:
                raise WavesynthError(f"{path / CONFIG_FILE}: {error}") from None
            load_fitting_state(model, read_state_dict(path / WEIGHTS_FILE), path / WEIGHTS_FILE, CONFIG_FILE)
            _check_hash(info, path / WEIGHTS_FILE)
            if model.config.excitation_channels and (path / PITCH_CONFIG_FILE).is_file():
                predictor = PitchPredictor.load(path)
        try:
            config, stats = MelConfig.from_dict(info["mel"]), _stats_from_dict(info["mel_stats"])
        except (TypeError, KeyError, ValueError) as error:
            where = path / CONFIG_FILE if path.is_dir() else path
            raise WavesynthError(f"{where}: bad mel settings ({error})") from None
        return cls(model.to(_device(device)), info["kind"], config, stats, info, pitch_predictor=predictor,
                   precision=precision)

    @property
    def name(self) -> str:
        return self.info.get("name", "")

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
            synthesize = self._student if self.kind == "student" else self._teacher
            audio = synthesize(batch, temperature, seed, source)
        return [audio[i, : n * self.hop_length].clip(-1.0, 1.0) for i, n in enumerate(frames)]

    def _excitation(self, source: tuple[Tensor, Tensor] | None, start: int, stop: int) -> Tensor | None:
        """The excitation of samples [start, stop), from the whole utterance's frequency and phase."""
        if source is None:
            return None
        frequency, phase = source
        return self.excitation.signal(frequency[:, start:stop], phase[:, start:stop])

    def _noise(self, start: int, stop: int, seed: int) -> Tensor:
        """The noise for samples [start, stop) (the same for every utterance), on the device: the student's ε
        (1, stop - start), or the teacher head's (1, noise_size, stop - start)."""
        draw = self.model.draw_noise if self.kind == "student" else self.model.head.draw_noise
        blocks = []
        for j in range(start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK + 1):
            block_seed = int(np.random.SeedSequence([seed, j]).generate_state(1)[0])
            generator = torch.Generator().manual_seed(block_seed)
            blocks.append(draw((1, NOISE_BLOCK), generator, dtype=torch.float32))
        offset = start - (start // NOISE_BLOCK) * NOISE_BLOCK
        return torch.cat(blocks, -1)[..., offset : offset + stop - start].to(self.device)

    def _chunks(self, total: int):
        """(a, b, lo, hi) per chunk: its own frames [a, b) and the frames [lo, hi) it runs on."""
        left, right = self.model.chunk_context_frames
        for a in range(0, total, self.chunk_frames):
            b = min(a + self.chunk_frames, total)
            yield a, b, max(a - left, 0), min(b + right, total)

    def _student(self, mel: Tensor, temperature: float, seed: int,
                 source: tuple[Tensor, Tensor] | None) -> np.ndarray:
        """(B, frames·hop) in chunks of ``chunk_frames`` (module docstring), assembled on the CPU."""
        hop = self.hop_length
        out = np.empty((mel.shape[0], mel.shape[-1] * hop), dtype=np.float32)
        for a, b, lo, hi in self._chunks(mel.shape[-1]):
            noise = self._noise(lo * hop, hi * hop, seed).expand(mel.shape[0], -1)
            excitation = self._excitation(source, lo * hop, hi * hop)
            x = self.model.sample(mel[..., lo:hi], temperature, noise=noise, excitation=excitation)
            out[:, a * hop : b * hop] = x[:, (a - lo) * hop : (b - lo) * hop].cpu().numpy()
        return out

    def _teacher(self, mel: Tensor, temperature: float, seed: int,
                 source: tuple[Tensor, Tensor] | None) -> np.ndarray:
        """(B, frames·hop) generated chunk after chunk: each chunk feeds the samples of its left context
        (already generated) as a known prefix, then samples its own (module docstring)."""
        hop = self.hop_length
        out = torch.empty(mel.shape[0], mel.shape[-1] * hop)
        for a, b, lo, hi in self._chunks(mel.shape[-1]):
            noise = self._noise(lo * hop, hi * hop, seed).expand(mel.shape[0], -1, -1)
            prefix = out[:, lo * hop : a * hop].to(self.device)
            excitation = self._excitation(source, lo * hop, hi * hop)
            x = self.model.generate(mel[..., lo:hi], temperature=temperature, noise=noise, prefix=prefix,
                                    excitation=excitation)
            out[:, a * hop : b * hop] = x[:, (a - lo) * hop : (b - lo) * hop].cpu()
        return out.numpy()

    def __repr__(self) -> str:
        return (f"Vocoder({self.name!r}, kind={self.kind}, preset={self.config.name}, "
                f"sample_rate={self.sample_rate}, device={self.device}, precision={self.precision})")


def synthesis_precision(precision: str, kind: str, device: torch.device | str) -> str:
    """"fp32" or "bf16" for synthesis by a ``kind`` model on ``device``. "bf16" and "fp32" are taken as
    asked; "auto" is bf16 only for a student on hardware with native bf16 (``train.precision.native_bf16``:
    CPU avx512_bf16 / amx_bf16, CUDA compute capability >= 8): there bf16 is measured within noise of fp32
    on held-out audio (README, "Precision"). A teacher stays fp32 under "auto": its sequential generation
    feeds every sample's rounding back into the next step. Anything else is a one-line ValueError."""
    resolved = resolve_precision(precision, device)
    if precision == "auto" and kind != "student":
        return "fp32"
    return resolved


def cast_for_synthesis(model: nn.Module, kind: str, precision: str) -> nn.Module:
    """``model`` (in place) with its network in the dtype of ``precision`` ("fp32" or "bf16").

    In bf16 the parts whose rounding reaches the audio unscaled stay float32. A student's last flow: the
    rounding of flow k's (μ_k, s_k) reaches x scaled by the later flows' Π_{j>k} s_j ≪ 1, but the last
    flow's is not scaled at all (on the shipped 22.05 kHz student and 12.8 s of held-out audio, bf16 in every
    flow raised the log-mel distance by 0.100 dB, the bound of issue #16; in all but the last, -0.006). The
    upsamplers (their phase weights are cast per flow), and a teacher's two output layers. The noise, the
    flows' composition x ← x·s_k + μ_k, the head's distribution and the audio are float32 in both.
    """
    model.float()
    if precision == "bf16":
        if kind == "student":
            for flow in model.flows[:-1]:
                flow.to(torch.bfloat16)
        else:
            model.to(torch.bfloat16)
            for part in (model.upsampler, model.output_hidden, model.output):
                part.float()
    return model


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


def _resolve(name_or_path: str | os.PathLike | None) -> Path:
    """The model folder (or checkpoint file) for a shipped model's name or a path."""
    name = default_model() if name_or_path is None else name_or_path
    if name is None:
        raise MissingFileError(f"no pretrained models in {PRETRAINED_DIR}: give a model folder")
    path = Path(name)
    if path.is_dir() or (path.is_file() and path.suffix == ".pt"):
        return path
    if isinstance(name, str) and name in list_pretrained():
        return PRETRAINED_DIR / name
    shipped = ", ".join(list_pretrained()) or "none"
    raise MissingFileError(f"no model folder or shipped model named {str(name)!r} (shipped: {shipped})")


def _from_checkpoint(checkpoint: Path, kind: str | None, name: str) -> tuple[dict, nn.Module]:
    """config.json's content and the model with the run's EMA weights, from a training checkpoint.
    ``kind`` None: a student if the run names a teacher (``DistillConfig.teacher``), else a teacher."""
    from .train import load_checkpoint

    if kind not in (None, *KINDS):
        raise WavesynthError(f"kind must be one of {KINDS}, got {kind!r}")
    state = load_checkpoint(checkpoint)
    try:
        run, weights = state["config"], state["ema"]["module"]
        config = get_preset(run["data"]["preset"])
    except (KeyError, TypeError) as error:
        raise WavesynthError(f"{checkpoint}: not a training checkpoint (no {error})") from None
    kind = kind or ("student" if "teacher" in run else "teacher")
    model = _build_model(kind, run["model"])
    load_fitting_state(model, weights, checkpoint, CONFIG_FILE)
    stats = FeatureCache.open(run["data"]["caches"][0]).stats if config.normalize else None
    info = {
        "name": name,
        "kind": kind,
        "model": model.config.to_dict(),
        "mel": config.to_dict(),
        "mel_stats": _stats_dict(stats) if stats is not None else None,
        "training": {
            "checkpoint": os.fspath(checkpoint),
            "step": state.get("step"),
            "best": state.get("best"),
            "data": run["data"],
            "train": run.get("train"),
            "exported": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        },
    }
    return info, model


def export_pretrained(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    kind: str | None = None,
    name: str | None = None,
    pitch: str | os.PathLike | None = None,
) -> Path:
    """Turn a training checkpoint (its EMA weights) into a model folder ``out_dir`` (config.json, model.pt;
    config.json records model.pt's sha256, which loading checks).

    A model with an excitation takes its pitch predictor along: ``pitch`` is a ``wavesynth train pitch``
    checkpoint (its EMA weights) or a folder holding pitch.json and pitch.pt; the predictor must read the
    model's mel preset. Without one, the folder's model needs F0 from the caller.

    ``kind`` None: a student if the run names a teacher, else a teacher; ``name`` None: the folder's name.
    The mel preset is the run's ``data.preset``; for a normalising preset the statistics come from the
    run's first feature cache (``data.caches[0]``, relative to the working directory as in training).
    """
    from .train import save_checkpoint

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise MissingFileError(f"{checkpoint}: no such checkpoint")
    info, model = _from_checkpoint(checkpoint, kind, name or Path(out_dir).resolve().name)
    predictor = None
    if pitch is not None:
        if not model.config.excitation_channels:
            raise WavesynthError(f"{checkpoint}: the model has no excitation, so it takes no pitch predictor")
        predictor = _read_pitch_predictor(Path(pitch), MelConfig.from_dict(info["mel"]))
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file in the way, a read-only place
        raise WavesynthError(f"{out}: cannot create the model folder ({error})") from None
    save_checkpoint({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
                    out / WEIGHTS_FILE)
    info[HASH_KEY] = _sha256(out / WEIGHTS_FILE)
    (out / CONFIG_FILE).write_text(json.dumps(info, indent=2, default=_json_default) + "\n", encoding="utf-8")
    if predictor is not None:
        predictor.save(out)
    return out


def _read_pitch_predictor(path: Path, mel: MelConfig) -> PitchPredictor:
    """A pitch predictor from a training checkpoint or a folder, checked against the model's features."""
    if path.is_dir():
        predictor = PitchPredictor.load(path)
    elif path.is_file():
        from .pitch.task import load_pitch_predictor

        predictor = load_pitch_predictor(path)
    else:
        raise MissingFileError(f"{path}: no such pitch predictor checkpoint or folder")
    trained_on = predictor.mel_config
    if trained_on is not None and trained_on != mel:
        raise WavesynthError(f"{path}: the pitch predictor reads preset {trained_on.name!r} features, the "
                             f"model {mel.name!r}")
    return predictor


def _json_default(value: Any) -> Any:
    if isinstance(value, Tensor | np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in {CONFIG_FILE}")
