"""A model folder's quality check: its log-mel distance on a few fixed clips, recorded beside the model.

Shape and finiteness do not show that a model still works: a model whose weights, code or dependencies
changed can still return finite audio of the right length. So a folder may hold ``check.json``::

    {"seed": 0, "precision": "fp32", "seconds": null, "clips": {"second.flac": 5.83, ...}}

the log-mel distance D (dB, ``metrics.log_mel_distance``) of copy synthesis of each clip (resampled to the
model's rate, cut to its first ``seconds`` when that is set, e.g. for a slow teacher; synthesised with
``seed`` in ``precision``), as measured when the model was made.
``recheck`` measures it again and names every clip whose distance moved by more than
max(``TOLERANCE_DB``, ``RELATIVE_TOLERANCE`` · D); the test suite does that for every shipped model on the
committed clips in ``tests/data``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..audio import load_audio
from ..errors import MissingFileError, WavesynthError
from .metrics import log_mel_distance

CHECK_FILE = "check.json"
TOLERANCE_DB = 0.25  # float differences between machines move a teacher's sampled audio a little
RELATIVE_TOLERANCE = 0.05
TEACHER_CHECK_SECONDS = 0.25  # a teacher generates sample by sample: its check takes this much of each clip


def measure(vocoder, clips: Sequence[str | os.PathLike], seed: int = 0,
            seconds: float | None = None) -> dict[str, float]:
    """{clip file name: log-mel distance in dB} of copy synthesis by ``vocoder`` (a ``wavesynth.Vocoder``) of
    each clip's first ``seconds`` (all of it for None)."""
    distances = {}
    for clip in clips:
        wave = load_audio(clip, vocoder.sample_rate, min_samples=vocoder.config.min_samples)
        if seconds is not None:
            wave = wave[: max(round(seconds * vocoder.sample_rate), vocoder.config.min_samples)]
        audio = vocoder.synthesize(vocoder.mel(wave), seed=seed)
        distances[Path(clip).name] = log_mel_distance(wave, audio, vocoder.config)
    return distances


def record(folder: str | os.PathLike, vocoder, clips: Sequence[str | os.PathLike], seed: int = 0,
           seconds: float | None = None) -> dict:
    """Measure ``vocoder`` (the model of ``folder``) on ``clips`` and write ``folder``/check.json."""
    names = [Path(clip).name for clip in clips]
    if len(set(names)) != len(names):
        raise WavesynthError(f"check clips need distinct file names, got {names}")
    check = {"seed": seed, "precision": vocoder.precision, "seconds": seconds,
             "clips": measure(vocoder, clips, seed, seconds)}
    (Path(folder) / CHECK_FILE).write_text(json.dumps(check, indent=2) + "\n", encoding="utf-8")
    return check


def recheck(folder: str | os.PathLike, vocoder, clip_dir: str | os.PathLike) -> list[str]:
    """The clips (found by name in ``clip_dir``) whose distance moved beyond the tolerance from ``folder``'s
    check.json, each as one line; empty when the model still works as recorded."""
    path = Path(folder) / CHECK_FILE
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file (record one with wavesynth export --check-clips)")
    check = json.loads(path.read_text(encoding="utf-8"))
    clips = [Path(clip_dir) / name for name in check["clips"]]
    measured = measure(vocoder, clips, check["seed"], check.get("seconds"))
    problems = []
    for name, recorded in check["clips"].items():
        tolerance = max(TOLERANCE_DB, RELATIVE_TOLERANCE * recorded)
        if abs(measured[name] - recorded) > tolerance:
            problems.append(f"{name}: log-mel distance {measured[name]:.2f} dB, recorded {recorded:.2f} dB "
                            f"(tolerance {tolerance:.2f} dB)")
    return problems


__all__ = [
    "CHECK_FILE", "RELATIVE_TOLERANCE", "TEACHER_CHECK_SECONDS", "TOLERANCE_DB", "measure", "recheck",
    "record",
]
