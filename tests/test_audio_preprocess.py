import importlib
import json
import multiprocessing
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wavesynth.audio import FeatureCache, MelExtractor, get_preset, integrated_loudness, preprocess
from wavesynth.audio.pitch import track_pitch
from wavesynth.audio.stats import MelStats, merge_all
from wavesynth.cli import main

DATA = Path(__file__).parent / "data"


def tone_burst(rate: int, seconds: float, freq: float, silence: float = 0.3) -> np.ndarray:
    """A decaying tone with ``silence`` seconds of near-silence (-80 dB noise) before and after."""
    rng = np.random.default_rng(int(freq))
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.4 * np.sin(2 * np.pi * freq * t) * np.exp(-t)
    quiet = np.zeros(int(rate * silence))
    wave = np.concatenate([quiet, tone, quiet]) + 1e-4 * rng.standard_normal(len(tone) + 2 * len(quiet))
    return wave.astype(np.float32)


@pytest.fixture
def corpus(tmp_path) -> Path:
    """Good files (two rates, PCM and float, FLAC, a committed speech clip) next to bad ones."""
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    sf.write(root / "a.wav", tone_burst(22050, 0.6, 440), 22050)
    sf.write(root / "b.flac", tone_burst(44100, 0.5, 660), 44100)
    sf.write(root / "sub" / "c.wav", tone_burst(16000, 0.4, 880), 16000, subtype="FLOAT")
    shutil.copy(DATA / "minute.flac", root / "minute.flac")
    (root / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    (root / "empty.flac").write_bytes(b"")
    nan = tone_burst(22050, 0.3, 500)
    nan[100:200] = np.nan
    sf.write(root / "nan.wav", nan, 22050, subtype="FLOAT")
    return root


GOOD, BAD = {"a", "b", "minute", "sub/c"}, {"corrupt", "empty", "nan"}


def run(corpus, out, **kwargs):
    kwargs.setdefault("pitch_tracker", None)  # the pitch labels have their own tests
    return preprocess("folder", corpus, out, "hifigan-22k", progress=False, workers=1, **kwargs)


def test_preprocess_writes_aligned_features_manifest_and_statistics(corpus, tmp_path):
    out = tmp_path / "cache"
    summary = run(corpus, out, valid_fraction=0.25)
    assert (summary.processed, summary.skipped) == (4, 0)
    assert {uid for uid, _ in summary.failures} == BAD
    config = get_preset("hifigan-22k")
    cache = FeatureCache.open(out)
    assert cache.config == config and cache.speakers == ["corpus"]
    assert {row["id"] for row in cache.rows} == GOOD and len(cache.split("valid")) == 1
    extractor = MelExtractor(config)
    for row in cache.rows:
        wave, mel = np.load(out / row["wave"]), np.load(out / row["mel"])
        assert wave.dtype == mel.dtype == np.float32
        assert len(wave) == row["samples"] == mel.shape[1] * config.hop_length == row["frames"] * 256
        np.testing.assert_array_equal(mel, extractor.log_mel(torch.from_numpy(wave)).numpy())
    tone = np.load(out / "wavs" / "a.npy")
    assert len(tone) < 0.8 * 22050  # most of the 2 × 0.3 s of near-silence (-80 dB) is trimmed
    expected = merge_all([MelStats.of(np.load(out / r["mel"])) for r in cache.split("train")])
    np.testing.assert_allclose(cache.stats.mean, expected.mean, rtol=1e-12)
    np.testing.assert_allclose(cache.stats.std, expected.std, rtol=1e-12)
    assert not list(out.rglob("*.tmp"))


def test_bad_files_are_reported_with_their_names(corpus, tmp_path):
    summary = run(corpus, tmp_path / "cache")
    report = summary.report()
    for name, reason in (
        ("corrupt.wav", "not a readable audio file"),
        ("empty.flac", "not a readable audio file"),
        ("nan.wav", "NaN"),
    ):
        assert f"{corpus / name}: " in report and reason in report
    errors = (tmp_path / "cache" / "errors.txt").read_text().splitlines()
    assert len(errors) == 3 and all(str(corpus) in line for line in errors)


def test_a_file_list_with_a_wrong_extension(corpus, tmp_path):
    (corpus / "notes.txt").write_text("not audio")
    listing = tmp_path / "list.txt"
    listing.write_text("corpus/a.wav|ann\ncorpus/notes.txt|ann\n")
    summary = preprocess("folder", listing, tmp_path / "cache", pitch_tracker=None, progress=False, workers=1)
    assert summary.processed == 1
    [(uid, message)] = summary.failures
    assert uid == "corpus/notes" and "notes.txt: unsupported file type '.txt'" in message


def test_second_run_resumes_and_redoes_only_missing_files(corpus, tmp_path):
    out = tmp_path / "cache"
    run(corpus, out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}
    manifest = (out / "manifest.jsonl").read_text()
    again = run(corpus, out)
    assert (again.processed, again.skipped, len(again.failures)) == (0, 4, 3)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")} == stamps
    assert (out / "manifest.jsonl").read_text() == manifest
    (out / "mels" / "b.npy").unlink()  # as if killed between the wave's rename and the mel's
    third = run(corpus, out)
    assert (third.processed, third.skipped) == (1, 3)
    assert (out / "manifest.jsonl").read_text() == manifest
    with pytest.raises(ValueError, match="different preset"):
        preprocess("folder", corpus, out, "speechbrain-16k", pitch_tracker=None, progress=False, workers=1)
    with pytest.raises(ValueError, match="different trim_db"):
        run(corpus, out, trim_db=30.0)


def test_worker_processes_give_the_same_cache(corpus, tmp_path):
    run(corpus, tmp_path / "one")
    summary = preprocess("folder", corpus, tmp_path / "two", pitch_tracker=None, progress=False, workers=2)
    assert summary.processed == 4 and len(summary.failures) == 3
    for name in ("manifest.jsonl", "stats.json"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()
    for path in (tmp_path / "one").rglob("*.npy"):
        np.testing.assert_array_equal(
            np.load(path), np.load(tmp_path / "two" / path.relative_to(tmp_path / "one"))
        )


@pytest.fixture
def tones(tmp_path) -> Path:
    root = tmp_path / "tones"
    root.mkdir()
    sf.write(root / "a.wav", tone_burst(22050, 0.6, 220), 22050)
    sf.write(root / "b.wav", tone_burst(16000, 0.5, 330), 16000)
    return root


def test_pitch_labels_are_added_to_an_old_cache_without_touching_its_mels(tones, tmp_path):
    out = tmp_path / "cache"
    run(tones, out)
    assert not (out / "pitch").exists() and all("pitch" not in row for row in FeatureCache.open(out).rows)
    settings = json.loads((out / "preprocess.json").read_text())  # as written before pitch labels existed
    del settings["pitch_tracker"], settings["preset"]["f0_min"], settings["preset"]["f0_max"]
    (out / "preprocess.json").write_text(json.dumps(settings))
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}

    summary = run(tones, out, pitch_tracker="pyin")
    assert (summary.processed, summary.skipped) == (2, 0)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    config = get_preset("hifigan-22k")
    for row, freq in zip(FeatureCache.open(out).rows, (220, 330), strict=True):
        labels = np.load(out / row["pitch"])
        assert labels.dtype == np.float32 and labels.shape == (3, row["frames"])
        expected = track_pitch(np.load(out / row["wave"]), config, "pyin").to_array()
        np.testing.assert_array_equal(labels, expected)
        assert np.median(labels[0][labels[1] == 1]) == pytest.approx(freq, rel=0.01)
    assert json.loads((out / "preprocess.json").read_text())["pitch_tracker"] == "pyin"

    (out / "pitch" / "b.npy").unlink()  # killed before b's labels were written
    assert (run(tones, out, pitch_tracker="pyin").processed, run(tones, out).skipped) == (1, 2)
    assert all("pitch" in row for row in FeatureCache.open(out).rows)  # no tracker asked: the cache's is kept
    with pytest.raises(ValueError, match="different pitch_tracker"):
        run(tones, out, pitch_tracker="crepe-tiny")
    with pytest.raises(ValueError, match="unknown pitch tracker 'yin'"):
        run(tones, out, pitch_tracker="yin")


def test_loudness_normalisation_and_no_trim(corpus, tmp_path):
    out = tmp_path / "cache"
    run(corpus, out, loudness=-26.0, trim_db=None)
    cache = FeatureCache.open(out)
    row = next(r for r in cache.rows if r["id"] == "a")
    assert row["samples"] == -(-26460 // 256) * 256  # all 1.2 s, padded to a multiple of the hop
    assert integrated_loudness(np.load(out / row["wave"]), 22050) == pytest.approx(-26.0, abs=0.05)
    assert json.loads((out / "preprocess.json").read_text())["loudness"] == -26.0


def test_cli_preprocess(corpus, tmp_path, capsys):
    assert (
        main(
            [
                "preprocess",
                "--corpus",
                "folder",
                "--root",
                str(corpus),
                "--out",
                str(tmp_path / "c"),
                "--preset",
                "speechbrain-16k",
                "--workers",
                "1",
                "--pitch-tracker",
                "none",
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "4 processed, 0 already done, 3 failed" in printed and "files/s" in printed
    assert json.loads((tmp_path / "c" / "preset.json").read_text())["sample_rate"] == 16000
    assert (
        main(["preprocess", "--corpus", "ljspeech", "--root", str(corpus), "--out", str(tmp_path / "d")]) == 2
    )
    assert (
        capsys.readouterr().err.strip() == f"wavesynth: error: {corpus / 'metadata.csv'}: no such file "
        "(an LJSpeech folder has metadata.csv and wavs/)"
    )
    with pytest.raises(SystemExit) as exit_status:  # --preset's choices are the registry's: a usage error
        main(["preprocess", "--corpus", "folder", "--root", str(corpus), "--out", str(tmp_path / "e"),
              "--preset", "nope"])
    assert exit_status.value.code == 2
    assert "argument --preset: invalid choice: 'nope'" in capsys.readouterr().err


def test_cli_speaker_selection_holds_voices_out_and_is_recorded(tmp_path, capsys):
    root = tmp_path / "vctk"
    for speaker, freq in (("p227", 220), ("p228", 330)):
        (root / "wav" / speaker).mkdir(parents=True)
        sf.write(root / "wav" / speaker / f"{speaker}_001.wav", tone_burst(16000, 0.4, freq), 16000)
    args = ["preprocess", "--corpus", "vctk", "--root", str(root), "--workers", "1", "--pitch-tracker",
            "none", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "c"), "--exclude-speakers", "p227"]) == 0
    cache = FeatureCache.open(tmp_path / "c")
    assert cache.speakers == ["p228"] and [r["id"] for r in cache.rows] == ["p228_001"]
    assert json.loads((tmp_path / "c" / "preprocess.json").read_text())["exclude_speakers"] == ["p227"]
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "d"), "--speakers", "p229"]) == 2
    assert capsys.readouterr().err.strip() == (
        "wavesynth: error: no speaker p229 in this corpus (it has: p227, p228)"
    )
    assert not (tmp_path / "d").exists()


def test_a_file_list_with_paths_outside_its_folder_writes_only_inside_out(tmp_path):
    """``../`` paths once made ids like ``../mels/x`` (whose wave and mel went to one file, the mel of id "x")
    and ``../../escape/a`` (written outside --out)."""
    for number, name in enumerate(("deep/lists/x.wav", "deep/mels/x.wav", "escape/a.wav", "other/a.wav")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / name, tone_burst(16000, 0.4, 220 + 110 * number), 16000)
    listing = tmp_path / "deep" / "lists" / "list.txt"
    listing.write_text(f"x.wav\n../mels/x.wav\n../../escape/a.wav\n{tmp_path / 'other' / 'a.wav'}\n")
    out = tmp_path / "cache"
    summary = preprocess("folder", listing, out, pitch_tracker=None, progress=False, workers=1)
    assert (summary.processed, summary.failures) == (4, [])
    assert [p for p in tmp_path.rglob("*.npy") if out not in p.parents] == []
    rows = FeatureCache.open(out).rows
    assert len({row["id"] for row in rows}) == 4
    for folder, key in (("wavs", "wave"), ("mels", "mel")):
        assert len(list((out / folder).rglob("*.npy"))) == 4
        assert all((out / row[key]).resolve().is_relative_to((out / folder).resolve()) for row in rows)
    for row in rows:
        wave, mel = np.load(out / row["wave"]), np.load(out / row["mel"])
        assert wave.shape == (row["samples"],) and mel.shape == (80, row["frames"])


def test_broken_links_are_failures(corpus, tmp_path):
    (corpus / "gone.wav").symlink_to(corpus / "deleted.wav")
    summary = run(corpus, tmp_path / "cache")
    assert {uid for uid, _ in summary.failures} == BAD | {"gone"}
    assert f"{corpus / 'gone.wav'}: broken symbolic link (to {corpus / 'deleted.wav'})" in summary.report()
    assert len((tmp_path / "cache" / "errors.txt").read_text().splitlines()) == 4


def test_damaged_cache_files_are_made_again_and_named(tones, tmp_path):
    out = tmp_path / "cache"
    run(tones, out)
    before = {p: np.load(p) for p in out.rglob("*.npy")}
    manifest = (out / "manifest.jsonl").read_text()
    wave = out / "wavs" / "a.npy"
    wave.write_bytes(wave.read_bytes()[:-100])  # truncated
    (out / "mels" / "b.npy").write_bytes(b"")  # empty
    summary = run(tones, out)
    assert (summary.processed, summary.skipped, summary.failures) == (2, 0, [])
    report = summary.report()
    assert f"remade: {wave}: damaged (truncated or empty)" in report and f"{out / 'mels' / 'b.npy'}" in report
    assert (out / "manifest.jsonl").read_text() == manifest
    for path, array in before.items():
        np.testing.assert_array_equal(np.load(path), array)


def _children(pid: int) -> list[int]:
    """The ids of the running (not zombie) processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _busy(*job) -> None:
    """Stands in for the work on one file: busy for a minute, so that the workers are running when their
    parent is killed."""
    time.sleep(60)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_killed_preprocess_leaves_no_workers_and_a_rerun_no_temporaries(tones, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    monkeypatch.setattr(importlib.import_module("wavesynth.audio.preprocess"), "_process", _busy)
    options = {"pitch_tracker": None, "progress": False, "workers": 2}
    parent = multiprocessing.get_context("fork").Process(target=preprocess, args=("folder", tones, out),
                                                         kwargs=options)
    parent.start()
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and parent.is_alive():
            time.sleep(0.05)
            workers = _children(parent.pid)
        assert len(workers) == 2, "the worker processes did not start"
        parent.terminate()  # SIGTERM
        parent.join(timeout=30)
        deadline = time.monotonic() + 3
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_alive, workers)), "worker processes outlived their parent"
    finally:
        parent.kill()
        for pid in filter(_alive, workers):
            os.kill(pid, signal.SIGKILL)
    monkeypatch.undo()
    stale = out / "wavs" / f".a.npy.{parent.pid}.tmp"  # what a worker killed while writing leaves
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"\x93NUMPY")
    summary = run(tones, out)
    assert summary.processed == 2 and "removed 1 temporary files left by a killed run" in summary.report()
    assert not list(out.rglob("*.tmp"))


def test_cli_preprocess_summary_names_the_error_list_and_exit_status(corpus, tmp_path, capsys):
    args = ["preprocess", "--corpus", "folder", "--workers", "1", "--pitch-tracker", "none", "--quiet"]
    assert main([*args, "--root", str(corpus), "--out", str(tmp_path / "c")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert f"3 failed (listed in {tmp_path / 'c' / 'errors.txt'})" in first
    assert main([*args, "--root", str(corpus / "corrupt.wav"), "--out", str(tmp_path / "d")]) == 1
    assert "0 processed, 0 already done, 1 failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--trim-db", "nan", "trim_db must be a number of dB above 0, got nan"),
        ("--trim-db", "-3", "trim_db must be a number of dB above 0, got -3.0"),
        ("--loudness", "inf", "loudness must be a finite level in LUFS, got inf"),
        ("--workers", "-1", "workers must be at least 1, got -1"),
        ("--workers", "0", "workers must be at least 1, got 0"),
        ("--valid-fraction", "2", "valid_fraction must be in [0, 1), got 2.0"),
        ("--valid-fraction", "nan", "valid_fraction must be in [0, 1), got nan"),
    ],
)
def test_cli_preprocess_rejects_bad_numbers_in_one_line(tones, tmp_path, capsys, option, value, message):
    out = tmp_path / "c"
    args = ["preprocess", "--corpus", "folder", "--root", str(tones), "--out", str(out), "--pitch-tracker",
            "none", "--quiet", option, value]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err == f"wavesynth: error: {message}\n" and captured.out == ""
    assert not out.exists()
