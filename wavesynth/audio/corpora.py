"""Corpus readers: list the utterances of a speech corpus with speaker names and transcripts.

Layouts (``root`` is the folder given on the command line):

- ``ljspeech``: ``metadata.csv`` (``id|text|normalized text``) and ``wavs/<id>.wav`` (or ``.flac`` etc.); one
  speaker, "LJ".
- ``vctk``: ``wav/<speaker>/*`` (or ``wav48/``, ``wav48_silence_trimmed/``), transcripts in
  ``txt/<speaker>/<id>.txt`` when present; of VCTK 0.92's two microphones only ``_mic1`` is kept.
- ``arctic``: ``cmu_us_<speaker>_arctic/wav/*.wav`` under ``root`` (or ``root`` is one such folder),
  transcripts from ``etc/txt.done.data`` when present. Ids are ``<speaker>/<file stem>``.
- ``folder``: every audio file under ``root``, recursively; or, if ``root`` is a text file, one path
  per line, optionally ``path|speaker`` (relative paths are relative to the list; lines starting
  with ``#`` are comments). Ids are paths relative to the folder (or list) without the extension; a
  listed file outside the list's folder gets ``outside/<its folder's name>-<hash of its folder>/<stem>``.

Utterance ids are unique within a corpus and may contain ``/``, but no empty, ``.`` or ``..`` part (so every
cache file stays inside the cache folder). Readers only list files: a missing or
broken audio file is reported later, by the preprocessing that tries to read it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingFileError, WavesynthError
from .cache import check_id
from .io import AUDIO_EXTENSIONS


@dataclass(frozen=True)
class Utterance:
    id: str
    path: Path
    speaker: str
    text: str = ""


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise MissingFileError(f"{path}: no such folder ({what})")
    return path


def _audio_files(folder: Path) -> list[Path]:
    """The audio files under ``folder``, broken links included (so that preprocessing reports them)."""
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in AUDIO_EXTENSIONS and (p.is_file() or p.is_symlink()))


def read_ljspeech(root: Path) -> list[Utterance]:
    metadata = root / "metadata.csv"
    if not metadata.is_file():
        raise MissingFileError(f"{metadata}: no such file (an LJSpeech folder has metadata.csv and wavs/)")
    utterances = []
    for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2 or not fields[0]:
            raise WavesynthError(f"{metadata}:{number}: expected 'id|text|normalized text'")
        text = fields[2] if len(fields) > 2 and fields[2] else fields[1]
        utterances.append(Utterance(fields[0], _ljspeech_audio(root / "wavs", fields[0]), "LJ", text))
    return utterances


def _ljspeech_audio(folder: Path, uid: str) -> Path:
    """``wavs/<id>.wav``, or the first ``<id>.<ext>`` in another audio format (e.g. FLAC) if that exists."""
    wav = folder / f"{uid}.wav"
    if wav.is_file():
        return wav
    return next((p for p in map(folder.joinpath, (uid + e for e in AUDIO_EXTENSIONS)) if p.is_file()), wav)


def read_vctk(root: Path) -> list[Utterance]:
    audio = next(
        (root / name for name in ("wav", "wav48_silence_trimmed", "wav48") if (root / name).is_dir()), None
    )
    if audio is None:
        raise MissingFileError(f"{root}: no wav/, wav48_silence_trimmed/ or wav48/ folder (VCTK layout)")
    utterances = []
    for speaker in sorted(p for p in audio.iterdir() if p.is_dir()):
        for path in _audio_files(speaker):
            if path.stem.endswith("_mic2"):
                continue
            uid = path.stem.removesuffix("_mic1")
            transcript = root / "txt" / speaker.name / f"{uid}.txt"
            text = transcript.read_text(encoding="utf-8").strip() if transcript.is_file() else ""
            utterances.append(Utterance(uid, path, speaker.name, text))
    return utterances


_ARCTIC = re.compile(r"cmu_us_(.+)_arctic")
_ARCTIC_PROMPT = re.compile(r'\(\s*(\S+)\s+"(.*)"\s*\)')


def read_arctic(root: Path) -> list[Utterance]:
    voices = (
        [root]
        if _ARCTIC.fullmatch(root.name)
        else sorted(p for p in root.iterdir() if _ARCTIC.fullmatch(p.name))
    )
    if not voices:
        raise MissingFileError(f"{root}: no cmu_us_<speaker>_arctic folder (CMU ARCTIC layout)")
    utterances = []
    for voice in voices:
        speaker = _ARCTIC.fullmatch(voice.name).group(1)
        prompts = voice / "etc" / "txt.done.data"
        texts = dict(_ARCTIC_PROMPT.findall(prompts.read_text(encoding="utf-8"))) if prompts.is_file() else {}
        for path in _audio_files(_require_dir(voice / "wav", "CMU ARCTIC voice")):
            utterances.append(Utterance(f"{speaker}/{path.stem}", path, speaker, texts.get(path.stem, "")))
    return utterances


def read_folder(root: Path) -> list[Utterance]:
    if root.is_file():
        return _read_file_list(root)
    return [
        Utterance(p.relative_to(root).with_suffix("").as_posix(), p, root.name) for p in _audio_files(root)
    ]


def _read_file_list(listing: Path) -> list[Utterance]:
    utterances = []
    folder = os.path.abspath(listing.parent)
    for line in listing.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, speaker = line.partition("|")
        path = listing.parent / name.strip()
        utterances.append(Utterance(_list_id(folder, path), path, speaker.strip() or listing.stem))
    return utterances


def _list_id(folder: str, path: Path) -> str:
    """The id of a listed file: its path relative to the list's ``folder`` (normalised, without the
    extension), or for a file outside that folder ``outside/<its folder's name>-<hash of its folder>/<stem>``,
    so that ids never hold ``..`` and files of different folders never share one."""
    full = os.path.abspath(path)  # normalised
    relative = os.path.relpath(full, folder)
    if relative != os.pardir and not relative.startswith(os.pardir + os.sep):
        return Path(relative).with_suffix("").as_posix()
    parent = os.path.dirname(full)
    digest = hashlib.sha1(parent.encode()).hexdigest()[:8]
    return f"outside/{os.path.basename(parent) or 'root'}-{digest}/{Path(full).stem}"


CORPORA: dict[str, Callable[[Path], list[Utterance]]] = {
    "ljspeech": read_ljspeech,
    "vctk": read_vctk,
    "arctic": read_arctic,
    "folder": read_folder,
}


def read_corpus(kind: str, root: str | os.PathLike) -> list[Utterance]:
    """The utterances of corpus ``kind`` (one of ``CORPORA``) at ``root``, sorted by id.
    FileNotFoundError/ValueError for a wrong layout, an empty corpus or duplicate ids."""
    if kind not in CORPORA:
        raise WavesynthError(f"unknown corpus kind {kind!r} (known: {', '.join(CORPORA)})")
    root = Path(root)
    if not root.exists():
        raise MissingFileError(f"{root}: no such folder or file")
    if kind != "folder":
        _require_dir(root, f"{kind} corpus")
    utterances = sorted(CORPORA[kind](root), key=lambda u: u.id)
    if not utterances:
        raise WavesynthError(f"{root}: no audio files found for corpus kind {kind!r}")
    for u in utterances:
        try:
            check_id(u.id)
        except ValueError as error:
            raise WavesynthError(f"{u.path}: {error}") from None
    for a, b in zip(utterances, utterances[1:], strict=False):
        if a.id == b.id:
            raise WavesynthError(f"{b.path}: utterance id {b.id!r} is also used by {a.path}")
    return utterances


def select_speakers(
    utterances: list[Utterance], speakers: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[Utterance]:
    """The utterances of ``speakers`` (all speakers when empty) that are not of a speaker in ``exclude``.
    A named speaker the corpus does not have, or a selection that leaves nothing, is a one-line ValueError
    (so a typo never silently drops or keeps a voice)."""
    known = {u.speaker for u in utterances}
    unknown = sorted((set(speakers) | set(exclude)) - known)
    if unknown:
        raise WavesynthError(f"no speaker {', '.join(unknown)} in this corpus (it has: "
                             f"{', '.join(sorted(known))})")
    kept = [u for u in utterances if (not speakers or u.speaker in speakers) and u.speaker not in exclude]
    if not kept:
        raise WavesynthError("the speaker selection leaves no utterances")
    return kept


def assign_splits(ids: list[str], valid_fraction: float = 0.05) -> dict[str, str]:
    """Map each id to "train" or "valid". The ``round(valid_fraction · N)`` ids (at least one when
    N >= 2 and the fraction is positive) with the smallest SHA-1 of the id are "valid": deterministic,
    independent of listing order, and mostly stable when a corpus grows."""
    if not 0 <= valid_fraction < 1:
        raise WavesynthError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    n_valid = round(valid_fraction * len(ids))
    if valid_fraction > 0 and len(ids) >= 2:
        n_valid = max(n_valid, 1)
    ranked = sorted(ids, key=lambda i: hashlib.sha1(i.encode()).hexdigest())
    valid = set(ranked[:n_valid])
    return {i: "valid" if i in valid else "train" for i in ids}
