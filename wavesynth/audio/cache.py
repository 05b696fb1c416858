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

Every file is written to a temporary name in the same folder (``.<name>.<pid>.tmp``) and renamed into
place, so a file that exists is complete (unless something outside wavesynth damaged it: ``intact`` checks).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MissingFileError, WavesynthError
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


def check_id(uid: str) -> str:
    """``uid``, or a ValueError unless it is a relative name of plain parts (none empty, ``.`` or ``..``):
    then the cache files of distinct ids are distinct and inside the cache folder."""
    if any(part in ("", ".", "..") for part in uid.split("/")):
        raise WavesynthError(f"utterance id {uid!r} has an empty, '.' or '..' part (its cache files would "
                             "not stay apart inside the cache folder)")
    return uid


def wave_path(root: Path, uid: str) -> Path:
    return root / "wavs" / f"{check_id(uid)}.npy"


def mel_path(root: Path, uid: str) -> Path:
    return root / "mels" / f"{check_id(uid)}.npy"


def pitch_path(root: Path, uid: str) -> Path:
    return root / "pitch" / f"{check_id(uid)}.npy"


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def intact(path: Path) -> bool:
    """Whether ``path`` is a whole .npy file: its header reads and the file is as long as the header says
    (False for a missing, empty or truncated file)."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with open(path, "rb") as file:
            shape, _, dtype = readers[np.lib.format.read_magic(file)](file)
            return os.fstat(file.fileno()).st_size == file.tell() + math.prod(shape) * dtype.itemsize
    except (OSError, ValueError, EOFError, KeyError):
        return False


def remove_stale_temporaries(root: Path) -> int:
    """Delete the temporary files (``.<name>.<pid>.tmp``) under ``root`` whose process is gone (a run that
    was killed while writing); -> how many."""
    removed = 0
    for path in root.rglob(".*.tmp"):
        pid = path.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _running(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
            raise MissingFileError(f"{root / MANIFEST}: no such file (run 'wavesynth preprocess' first)")
        config = MelConfig.from_dict(json.loads((root / PRESET).read_text()))
        rows = [json.loads(line) for line in (root / MANIFEST).read_text().splitlines() if line]
        speakers = json.loads((root / SPEAKERS).read_text())
        return cls(root, config, MelStats.load(root / STATS), rows, speakers)

    def split(self, name: str) -> list[dict]:
        """The rows of split ``name`` ("train" or "valid")."""
        return [row for row in self.rows if row["split"] == name]
