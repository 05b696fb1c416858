"""Preprocess a corpus into a feature cache (layout in ``wavesynth.audio.cache``).

Per file: load (mono, resampled to the preset's rate), trim leading and trailing silence (frames more
than ``trim_db`` below the loudest, ``trim.trim_silence``), optionally normalise the integrated loudness
(BS.1770), zero-pad to a multiple of the hop, extract the log-mel, and write both arrays atomically.
With a pitch tracker (``audio.pitch``), the frame-aligned pitch labels of the cached wave are written as
well. Files run in parallel worker processes. A run is resumable: an utterance whose files all exist is
skipped (its statistics are re-read from the mel), and one with wave and mel but no pitch labels (a cache
made without a tracker, or before trackers existed) gets its labels from the cached wave, with the mel
left as it is. A damaged (empty or truncated) cache file is made again and named in the summary, and the
temporary files of a killed run are removed. A file that fails is reported and skipped; the summary lists
every failure, and so does ``errors.txt``. Workers end when the process that started them is killed.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import WavesynthError
from . import cache
from .corpora import Utterance, assign_splits, read_corpus, select_speakers
from .features import MelConfig, MelExtractor, get_preset, pad_to_hop
from .io import load_audio
from .loudness import normalize_loudness
from .pitch import TRACKERS, track_pitch
from .stats import MelStats, merge_all
from .trim import trim_silence


@dataclass
class Summary:
    """What a run did. ``seconds`` is the audio (before trimming) of the files processed in this run."""

    out: Path
    processed: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    remade: list[Path] = field(default_factory=list)  # damaged (empty or truncated) cache files made again
    stale: int = 0  # temporary files of a killed run, removed
    seconds: float = 0.0
    wall: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the cache holds at least one utterance (the CLI's exit status is 0 then, else 1)."""
        return self.processed + self.skipped > 0

    def report(self) -> str:
        failed = len(self.failures)
        line = f"{self.out}: {self.processed} processed, {self.skipped} already done, {failed} failed"
        if failed:
            line += f" (listed in {self.out / cache.ERRORS})"
        if not self.ok:
            line += "; no utterance is usable, so no manifest was written"
        if self.processed:
            rate, speed = self.processed / self.wall, self.seconds / self.wall
            line += f"; {self.seconds / 60:.1f} min of audio in {self.wall:.1f} s: {rate:.1f} files/s, "
            line += f"{speed:.1f} s of audio per s"
        lines = [line] + [f"  remade: {path}: damaged (truncated or empty)" for path in self.remade]
        if self.stale:
            lines.append(f"  removed {self.stale} temporary files left by a killed run")
        return "\n".join(lines + [f"  failed: {message}" for _, message in self.failures])


@lru_cache(maxsize=4)
def _extractor(config: MelConfig) -> MelExtractor:
    return MelExtractor(config)


def _init_worker(parent: int) -> None:
    torch.set_num_threads(1)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this worker process once process ``parent`` is gone (killed), instead of waiting for work
    for ever."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(1)


def _features(
    utt: Utterance, out: Path, config: MelConfig, trim_db: float | None, loudness: float | None
) -> tuple[np.ndarray, np.ndarray, float]:
    """(wave, mel, source seconds) of ``utt``, read from the cache if both are there, else made and saved."""
    wave_file, mel_file = cache.wave_path(out, utt.id), cache.mel_path(out, utt.id)
    if cache.intact(wave_file) and cache.intact(mel_file):
        wave = np.load(wave_file)
        return wave, np.load(mel_file), len(wave) / config.sample_rate
    wave = load_audio(utt.path, config.sample_rate)
    seconds = len(wave) / config.sample_rate
    if trim_db is not None:
        wave = trim_silence(wave, trim_db)
    if loudness is not None:
        wave = normalize_loudness(wave, config.sample_rate, loudness)
    if len(wave) < config.min_samples:
        trimmed = " after trimming silence" if trim_db is not None else ""
        raise WavesynthError(
            f"{utt.path}: too short ({len(wave)} samples{trimmed}, at least {config.min_samples} needed)"
        )
    wave = pad_to_hop(wave, config.hop_length).astype(np.float32)
    with torch.no_grad():
        mel = _extractor(config).log_mel(torch.from_numpy(wave)).numpy()
    cache.save_npy(wave_file, wave)
    cache.save_npy(mel_file, mel)
    return wave, mel, seconds


def _process(
    utt: Utterance, out: Path, config: MelConfig, trim_db: float | None, loudness: float | None,
    tracker: str | None
) -> tuple[str, str, int, float, MelStats | str]:
    """-> (id, status, frames, source seconds, MelStats | error message)."""
    try:
        wave, mel, seconds = _features(utt, out, config, trim_db, loudness)
        if tracker is not None:
            cache.save_npy(cache.pitch_path(out, utt.id), track_pitch(wave, config, tracker).to_array())
        return utt.id, "processed", mel.shape[1], seconds, MelStats.of(mel)
    except Exception as error:  # a bad file must never abort the run
        message = str(error) if str(utt.path) in str(error) else f"{utt.path}: {error}"
        return utt.id, "failed", 0, 0.0, message


def _run(jobs: list[tuple], workers: int) -> Iterator[tuple]:
    """``_process`` over ``jobs``, in this process or in a pool of ``workers`` processes (forked where
    the platform can, so workers start without re-importing torch), in order of completion."""
    if workers == 1 or len(jobs) <= 1:
        yield from (_process(*job) for job in jobs)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, initializer=_init_worker,
                             initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_process, *job) for job in jobs]
        try:
            yield from (future.result() for future in as_completed(futures))
        finally:
            pool.shutdown(cancel_futures=True)


def _check_settings(out: Path, settings: dict) -> str | None:
    """Record ``settings`` for a new cache, or check them against an existing cache's; -> the pitch tracker
    to label with. A cache without pitch labels takes the tracker asked for, and a cache with labels keeps
    its tracker when none is asked for (so every utterance is labelled alike)."""
    path = out / cache.SETTINGS
    if path.is_file():
        previous = json.loads(path.read_text())
        previous["preset"] = MelConfig.from_dict(previous["preset"]).to_dict()  # fills fields added since
        tracker = settings["pitch_tracker"] or previous.get("pitch_tracker")
        previous.setdefault("pitch_tracker", tracker)
        settings = {**settings, "pitch_tracker": tracker}
        changed = sorted(k for k in settings.keys() | previous.keys() if settings.get(k) != previous.get(k))
        if changed:
            raise WavesynthError(
                f"{out}: already holds features made with different {', '.join(changed)}; use another --out"
            )
    else:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # a file in the way, a read-only place
            raise WavesynthError(f"{out}: cannot create the --out folder ({error})") from None
    cache.write_text(path, json.dumps(settings, indent=2))
    return settings["pitch_tracker"]


def preprocess(
    corpus: str,
    root: str | os.PathLike,
    out: str | os.PathLike,
    preset: str | MelConfig = "hifigan-22k",
    *,
    trim_db: float | None = 60.0,
    loudness: float | None = None,
    valid_fraction: float = 0.05,
    pitch_tracker: str | None = "pyin",
    speakers: Sequence[str] = (),
    exclude_speakers: Sequence[str] = (),
    workers: int | None = None,
    progress: bool = True,
) -> Summary:
    """Turn corpus ``corpus`` (a kind in ``corpora.CORPORA``) at ``root`` into a feature cache at ``out``.

    ``trim_db=None`` keeps silences; ``loudness`` is a target in LUFS (e.g. -23) or None.
    ``pitch_tracker`` is one of ``audio.pitch.TRACKERS``, or None for no pitch labels (unless the cache
    already has them). ``speakers`` keeps only those speakers, ``exclude_speakers`` leaves those out
    (e.g. to hold voices out of training entirely). ``workers`` defaults to the number of CPU cores; 1 runs
    in this process. Bad options are a ValueError before anything is written.
    """
    if pitch_tracker is not None and pitch_tracker not in TRACKERS:
        raise WavesynthError(f"unknown pitch tracker {pitch_tracker!r} (known: {', '.join(TRACKERS)})")
    if trim_db is not None and not (math.isfinite(trim_db) and trim_db > 0):
        raise WavesynthError(f"trim_db must be a number of dB above 0, got {trim_db}")
    if loudness is not None and not math.isfinite(loudness):
        raise WavesynthError(f"loudness must be a finite level in LUFS, got {loudness}")
    if workers is not None and workers < 1:
        raise WavesynthError(f"workers must be at least 1, got {workers}")
    config = get_preset(preset) if isinstance(preset, str) else preset
    workers = workers or os.cpu_count() or 1
    out = Path(out)
    utterances = select_speakers(read_corpus(corpus, root), speakers, exclude_speakers)
    settings = {
        "corpus": corpus,
        "preset": config.to_dict(),
        "trim_db": trim_db,
        "loudness": loudness,
        "valid_fraction": valid_fraction,
        "pitch_tracker": pitch_tracker,
        **({"speakers": sorted(speakers)} if speakers else {}),
        **({"exclude_speakers": sorted(exclude_speakers)} if exclude_speakers else {}),
    }
    splits = assign_splits([u.id for u in utterances], valid_fraction)
    tracker = _check_settings(out, settings)
    cache.write_text(out / cache.PRESET, config.to_json())

    start = time.perf_counter()
    summary, results = Summary(out, stale=cache.remove_stale_temporaries(out)), {}
    todo = []
    for u in utterances:
        paths = [cache.wave_path(out, u.id), cache.mel_path(out, u.id)]
        paths += [cache.pitch_path(out, u.id)] if tracker else []
        damaged = [path for path in paths if path.exists() and not cache.intact(path)]
        summary.remade += damaged
        if not damaged and all(path.is_file() for path in paths):
            mel = np.load(cache.mel_path(out, u.id))
            results[u.id] = ("skipped", mel.shape[1], MelStats.of(mel))
        else:
            todo.append((u, out, config, trim_db, loudness, tracker))
    with tqdm(total=len(todo), unit="file", disable=not progress or not todo, desc="preprocess") as bar:
        for uid, status, frames, seconds, payload in _run(todo, workers):
            results[uid] = (status, frames, payload)
            summary.seconds += seconds
            bar.update()
    summary.wall = time.perf_counter() - start

    rows, stats = [], {"train": [], "valid": []}
    for u in utterances:
        status, frames, payload = results[u.id]
        if status == "failed":
            summary.failures.append((u.id, payload))
            continue
        summary.processed += status == "processed"
        summary.skipped += status == "skipped"
        stats[splits[u.id]].append(payload)
        rows.append(
            {
                "id": u.id,
                "speaker": u.speaker,
                "split": splits[u.id],
                "text": u.text,
                "source": str(u.path),
                "wave": cache.wave_path(Path(), u.id).as_posix(),
                "mel": cache.mel_path(Path(), u.id).as_posix(),
                **({"pitch": cache.pitch_path(Path(), u.id).as_posix()} if tracker else {}),
                "frames": frames,
                "samples": frames * config.hop_length,
                "seconds": round(frames * config.hop_length / config.sample_rate, 4),
            }
        )
    _write_outputs(out, rows, stats["train"] or stats["valid"], summary.failures)
    return summary


def _write_outputs(
    out: Path, rows: list[dict], stats: list[MelStats], failures: list[tuple[str, str]]
) -> None:
    if rows:
        merge_all(stats).save(out / cache.STATS)
        cache.write_text(out / cache.SPEAKERS, json.dumps(sorted({r["speaker"] for r in rows})))
        cache.write_text(out / cache.MANIFEST, "".join(json.dumps(r) + "\n" for r in rows))
    errors = out / cache.ERRORS
    if failures:
        cache.write_text(errors, "".join(message + "\n" for _, message in failures))
    elif errors.exists():
        errors.unlink()
