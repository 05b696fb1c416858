"""Model folders: the shipped models, the folder format, its model types, and export from training.

A model folder (the shipped ones are ``pretrained/<name>/`` at the top of the repository)::

    config.json    ``ModelInfo``: {"name", "kind": a key of MODEL_TYPES, "model": that type's config dict,
                   "mel": MelConfig dict, "mel_stats": MelStats dict or null, "training": {facts},
                   "weights_sha256": model.pt's sha256, checked on load (optional)}
    model.pt       the weights: a plain state_dict, read with torch.load(weights_only=True)
    pitch.json     for a model with an excitation: its F0 predictor (``wavesynth.pitch.PitchPredictor``)
    pitch.pt
    MODEL_CARD.md  what it was trained on, how, and how well it does

Loading never executes code from a file. ``export_pretrained`` makes such a folder from a training
checkpoint (its EMA weights); ``load_pretrained`` reads a folder or a checkpoint directly. A model type
(``ModelType``, one entry of ``MODEL_TYPES`` per kind) names its config and model classes, the adapter the
Vocoder drives it through (``wavesynth.synthesis``), and the training config whose runs make it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from .audio import MelConfig, MelStats, get_preset
from .audio.cache import FeatureCache
from .errors import MissingFileError, WavesynthError
from .parallel import ParallelWaveNet, StudentConfig
from .pitch.predictor import PITCH_CONFIG_FILE, PitchPredictor
from .synthesis import StudentSynthesis, SynthesisModel, TeacherSynthesis
from .train.checkpoint import load_checkpoint, load_fitting_state, read_state_dict, save_checkpoint
from .wavenet import WaveNet, WaveNetConfig


def _pretrained_dir() -> Path:
    """The shipped models: ``pretrained/`` of a source checkout (or editable install), else the copy a wheel
    installs under ``<prefix>/share/wavesynth/pretrained``."""
    checkout = Path(__file__).resolve().parent.parent / "pretrained"
    installed = Path(sys.prefix) / "share" / "wavesynth" / "pretrained"
    return installed if not checkout.is_dir() and installed.is_dir() else checkout


PRETRAINED_DIR = _pretrained_dir()
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.pt"
HASH_KEY = "weights_sha256"
DEFAULT_MODEL = "ljspeech-22k-student"  # the 22.05 kHz HiFi-GAN convention, the most common one


@dataclass(frozen=True)
class ModelType:
    """A kind of model a folder holds: its settings (config.json's "model"), how it is built from them, how
    the Vocoder drives it, and which training runs make it (a checkpoint's ``config_class``)."""

    config_class: type  # with from_dict / to_dict
    model_class: type[nn.Module]  # model_class(config)
    synthesis: type[SynthesisModel]  # synthesis(model): the adapter
    run_config: str  # the name of the training config class, e.g. "TeacherConfig"

    def build(self, config: Any) -> SynthesisModel:
        """A fresh model of ``config`` (untrained weights) in its adapter."""
        return self.synthesis(self.model_class(config))


MODEL_TYPES: dict[str, ModelType] = {
    "student": ModelType(StudentConfig, ParallelWaveNet, StudentSynthesis, "DistillConfig"),
    "teacher": ModelType(WaveNetConfig, WaveNet, TeacherSynthesis, "TeacherConfig"),
}


def model_type(kind: str) -> ModelType:
    """The ``MODEL_TYPES`` entry of ``kind``; a one-line ValueError for an unknown kind."""
    if kind not in MODEL_TYPES:
        raise WavesynthError(f"kind must be one of {tuple(MODEL_TYPES)}, got {kind!r}")
    return MODEL_TYPES[kind]


@dataclass
class ModelInfo:
    """A model folder's config.json, checked and typed.

    >>> info = pretrained_config("allison-16k-student")
    >>> info.kind, info.mel.name, info.model.noise, info.mel_stats
    ('student', 'speechbrain-16k', 'gaussian', None)
    >>> ModelInfo.from_dict(info.to_dict()) == info
    True
    """

    name: str
    kind: str  # a key of MODEL_TYPES
    model: Any  # that type's config_class
    mel: MelConfig
    mel_stats: MelStats | None  # the corpus statistics of a normalising preset
    training: dict | None = None  # facts about the run it was exported from
    weights_sha256: str | None = None  # model.pt's, checked on load

    @classmethod
    def from_dict(cls, data: Any) -> ModelInfo:
        """Inverse of ``to_dict``; a one-line ValueError for what does not fit (missing or unknown keys, an
        unknown kind, bad mel or model settings)."""
        if not isinstance(data, dict):
            raise WavesynthError(f"expected a JSON object, got {type(data).__name__}")
        missing = [key for key in ("name", "kind", "model", "mel", "mel_stats") if key not in data]
        if missing:
            raise WavesynthError(f"missing keys {missing}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise WavesynthError(f"unknown keys {unknown}")
        kind = model_type(data["kind"])
        try:
            mel = MelConfig.from_dict(data["mel"])
            stats = data["mel_stats"]
            if stats is not None:
                mean, m2 = (np.asarray(stats[key], np.float64) for key in ("mean", "m2"))
                stats = MelStats(int(stats["count"]), mean, m2)
        except (TypeError, KeyError, ValueError) as error:
            raise WavesynthError(f"bad mel settings ({error})") from None
        try:
            model = kind.config_class.from_dict(data["model"])
        except (TypeError, KeyError, ValueError) as error:
            raise WavesynthError(f"bad model settings ({error})") from None
        return cls(data["name"], data["kind"], model, mel, stats, data.get("training"), data.get(HASH_KEY))

    def to_dict(self) -> dict[str, Any]:
        """config.json's content (the optional keys only when set)."""
        stats = self.mel_stats
        if stats is not None:
            stats = {"count": stats.count, "mean": stats.mean.tolist(), "m2": stats.m2.tolist()}
        data = {"name": self.name, "kind": self.kind, "model": self.model.to_dict(),
                "mel": self.mel.to_dict(), "mel_stats": stats}
        if self.training is not None:
            data["training"] = self.training
        if self.weights_sha256 is not None:
            data[HASH_KEY] = self.weights_sha256
        return data


def read_info(path: Path) -> ModelInfo:
    """The ``ModelInfo`` of a config.json file; one-line errors that name the file."""
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file (a model folder holds {CONFIG_FILE}, {WEIGHTS_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WavesynthError(f"{path}: not valid JSON ({error})") from None
    try:
        return ModelInfo.from_dict(data)
    except ValueError as error:
        raise WavesynthError(f"{path}: {error}") from None


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
        return read_info(folder / CONFIG_FILE).kind
    except (OSError, ValueError):
        return None


def pretrained_config(name_or_path: str | os.PathLike | None = None) -> ModelInfo:
    """The config.json of a shipped model (by name; None: ``default_model()``) or a model folder, weights
    unread."""
    path = resolve(name_or_path)
    if path.is_file():
        raise WavesynthError(f"{path}: a training checkpoint, not a model folder")
    return read_info(path / CONFIG_FILE)


def resolve(name_or_path: str | os.PathLike | None) -> Path:
    """The model folder (or checkpoint file) for a shipped model's name or a path (None: the default)."""
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


def load_pretrained(name_or_path: str | os.PathLike | None = None,
                    ) -> tuple[ModelInfo, SynthesisModel, PitchPredictor | None]:
    """A shipped model (by name; None: ``default_model()``), a model folder (its weights' sha256 checked)
    or a training checkpoint (.pt: its EMA weights), on the CPU: its info, the model in its adapter, and the
    folder's pitch predictor (None without one)."""
    path = resolve(name_or_path)
    if path.is_file():
        return (*_from_checkpoint(path, None, f"{path.parent.name}/{path.name}"), None)
    info = read_info(path / CONFIG_FILE)
    synthesis = model_type(info.kind).build(info.model)
    weights = path / WEIGHTS_FILE
    load_fitting_state(synthesis.model, read_state_dict(weights), weights, CONFIG_FILE)
    _check_hash(info, weights)
    excited = synthesis.model.config.excitation_channels and (path / PITCH_CONFIG_FILE).is_file()
    return info, synthesis, PitchPredictor.load(path) if excited else None


def _sha256(path: Path) -> str:
    """The hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_hash(info: ModelInfo, weights: Path) -> None:
    """A one-line ValueError when config.json records a ``weights_sha256`` that ``weights`` does not have
    (a damaged or replaced file); nothing to check without the key."""
    expected = info.weights_sha256
    if expected is None:
        return
    actual = _sha256(weights)
    if actual != expected:
        raise WavesynthError(f"{weights}: its sha256 {actual[:16]}… is not {HASH_KEY} {str(expected)[:16]}… "
                             f"in {CONFIG_FILE}: the file is damaged or was replaced (export or download it "
                             "again)")


def _checkpoint_kind(state: dict, checkpoint: Path) -> str:
    """The kind of model a training checkpoint's run trains: the model type whose ``run_config`` is the
    checkpoint's ``config_class``. Checkpoints saved before the Trainer stored it hold a ``DistillConfig``
    when the run names a teacher, else a ``TeacherConfig``."""
    run_config = state.get("config_class") or ("DistillConfig" if "teacher" in state["config"] else
                                               "TeacherConfig")
    kinds = [kind for kind, entry in MODEL_TYPES.items() if entry.run_config == run_config]
    if not kinds:
        raise WavesynthError(f"{checkpoint}: a {run_config} run, which trains no vocoder (kinds: "
                             f"{', '.join(MODEL_TYPES)})")
    return kinds[0]


def _from_checkpoint(checkpoint: Path, kind: str | None, name: str) -> tuple[ModelInfo, SynthesisModel]:
    """The info and the model with the run's EMA weights, from a training checkpoint; ``kind`` None: the
    kind its run trains (``_checkpoint_kind``)."""
    if kind is not None:
        model_type(kind)
    state = load_checkpoint(checkpoint)
    try:
        run, weights = state["config"], state["ema"]["module"]
        mel = get_preset(run["data"]["preset"])
    except (KeyError, TypeError) as error:
        raise WavesynthError(f"{checkpoint}: not a training checkpoint (no {error})") from None
    kind = kind or _checkpoint_kind(state, checkpoint)
    entry = model_type(kind)
    try:
        config = entry.config_class.from_dict(run["model"])
    except (TypeError, KeyError, ValueError) as error:
        raise WavesynthError(f"{checkpoint}: bad model settings for a {kind} ({error})") from None
    synthesis = entry.build(config)
    load_fitting_state(synthesis.model, weights, checkpoint, CONFIG_FILE)
    stats = FeatureCache.open(run["data"]["caches"][0]).stats if mel.normalize else None
    training = {
        "checkpoint": os.fspath(checkpoint),
        "step": state.get("step"),
        "best": state.get("best"),
        "data": run["data"],
        "train": run.get("train"),
        "exported": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    return ModelInfo(name, kind, synthesis.model.config, mel, stats, training), synthesis


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

    ``kind`` None: the kind the checkpoint's run trains (a student for a distillation run, a teacher for a
    teacher run); ``name`` None: the folder's name. The mel preset is the run's ``data.preset``; for a
    normalising preset the statistics come from the run's first feature cache (``data.caches[0]``,
    relative to the working directory as in training).
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise MissingFileError(f"{checkpoint}: no such checkpoint")
    info, synthesis = _from_checkpoint(checkpoint, kind, name or Path(out_dir).resolve().name)
    model = synthesis.model
    predictor = None
    if pitch is not None:
        if not model.config.excitation_channels:
            raise WavesynthError(f"{checkpoint}: the model has no excitation, so it takes no pitch predictor")
        predictor = _read_pitch_predictor(Path(pitch), info.mel)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file in the way, a read-only place
        raise WavesynthError(f"{out}: cannot create the model folder ({error})") from None
    save_checkpoint({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
                    out / WEIGHTS_FILE)
    info.weights_sha256 = _sha256(out / WEIGHTS_FILE)
    text = json.dumps(info.to_dict(), indent=2, default=_json_default) + "\n"
    (out / CONFIG_FILE).write_text(text, encoding="utf-8")
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
