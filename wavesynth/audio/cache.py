"""The feature cache folder that preprocessing writes and training datasets read.

::

    preset.json       the MelConfig the features were made with
    preprocess.json   the preset and preprocessing options (a resumed run must use the same ones)
    manifest.jsonl    one JSON object per utterance: id, speaker, split, text, source, wave, mel,
                      frames, samples, seconds (sorted by id)
    stats.json        per-bin log-mel statistics of the training split (MelStats)
    speakers.json     sorted speaker names; a speaker's index in this list is its integer id
    errors.txt        files that failed, one "path: reason" per line (only if some did)
    wavs/<id>.npy     float32 (samples,) at the preset's rate, samples = frames * hop_length
    mels/<id>.npy     float32 (n_mels, frames), log-mel before any mean-variance normalisation
    pitch/<id>.npy    float32 (3, frames): F0 in Hz (0 where unvoiced), voiced flag and voicing probability
                      at the mel frames' centres (``audio.pitch.PitchTrack``; written when preprocess ran
                      with a pitch tracker, which preprocess.json names)

Every file is written to a temporary name in the same folder and renamed into place, so a file that
exists is complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import MelConfig
from .stats import MelStats

PRESET, SETTINGS, MANIFEST, STATS, SPEAKERS, ERRORS = (
    "preset.json",
    "preprocess.json",
    "manifest.jsonl",
    "stats.json",
    "speakers.json",
    "errors.txt",
)


def wave_path(root: Path, uid: str) -> Path:
    return root / "wavs" / f"{uid}.npy"


def mel_path(root: Path, uid: str) -> Path:
    return root / "mels" / f"{uid}.npy"


def pitch_path(root: Path, uid: str) -> Path:
    return root / "pitch" / f"{uid}.npy"


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    with open(tmp, "wb") as file:
        np.save(file, array, allow_pickle=False)
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    tmp = _temporary(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class FeatureCache:
    """A preprocessed corpus: its preset, statistics, manifest rows and speakers."""

    root: Path
    config: MelConfig
    stats: MelStats
    rows: list[dict]
    speakers: list[str]

    @classmethod
    def open(cls, root: str | os.PathLike) -> FeatureCache:
        root = Path(root)
        if not (root / MANIFEST).is_file():
            raise FileNotFoundError(f"{root / MANIFEST}: no such file (run 'wavesynth preprocess' first)")
        config = MelConfig.from_dict(json.loads((root / PRESET).read_text()))
        rows = [json.loads(line) for line in (root / MANIFEST).read_text().splitlines() if line]
        speakers = json.loads((root / SPEAKERS).read_text())
        return cls(root, config, MelStats.load(root / STATS), rows, speakers)

    def split(self, name: str) -> list[dict]:
        """The rows of split ``name`` ("train" or "valid")."""
        return [row for row in self.rows if row["split"] == name]
