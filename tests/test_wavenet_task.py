"""`wavesynth train teacher`: the TeacherTask through the CLI, on a tiny preprocessed corpus."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wavesynth.audio import preprocess
from wavesynth.cli import main
from wavesynth.train import load_trained
from wavesynth.wavenet.task import TeacherTask

TINY = [
    "model.layers=2", "model.cycles=1", "model.residual_channels=8", "model.gate_channels=8",
    "model.skip_channels=8", "data.segment_frames=4", "data.val_segment_frames=8",
    "data.sample_seconds=0.05", "train.batch_size=2", "train.warmup_steps=0", "train.lr=1e-2",
    "train.progress=false", "train.log_every=1",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A hifigan-22k feature cache of six short noisy chirps (two in the validation split)."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    for i in range(6):
        t = np.arange(int(22050 * 0.3)) / 22050
        wave = 0.3 * np.sin(2 * np.pi * (300 + 100 * i + 2000 * t) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(root / f"u{i}.wav", wave.astype(np.float32), 22050)
    out = tmp_path_factory.mktemp("cache")
    preprocess("folder", root, out, "hifigan-22k", trim_db=None, valid_fraction=0.34, progress=False,
               workers=1)
    return out


def write_config(path: Path, cache: Path, run: Path) -> Path:
    path.write_text(f'[data]\ncaches = ["{cache}"]\n\n[train]\nrun_dir = "{run}"\n')
    return path


def val_metrics(run: Path) -> dict[int, dict[str, float]]:
    with open(run / "metrics.csv", newline="") as file:
        rows = list(csv.reader(file))[1:]
    out: dict[int, dict[str, float]] = {}
    for step, name, value in rows:
        if name.startswith("val/"):
            out.setdefault(int(step), {})[name[4:]] = float(value)
    return out


def test_train_teacher_learns_logs_samples_and_resumes(cache, tmp_path):
    config, run = write_config(tmp_path / "teacher.toml", cache, tmp_path / "run"), tmp_path / "run"
    args = ["train", "teacher", "--config", str(config), *TINY, "train.val_every=10", "train.save_every=10"]
    assert main([*args, "train.steps=20"]) == 0
    metrics = val_metrics(run)
    assert sorted(metrics) == [10, 20]
    assert metrics[20]["loss"] < metrics[10]["loss"]  # it learns
    nats_to_bits = metrics[20]["loss"] / math.log(2)  # the default head is discrete (16-bit bins)
    assert metrics[20]["bits_per_sample"] == pytest.approx(nats_to_bits, rel=1e-4)
    clips = sorted((run / "samples").glob("00000020_*.wav"))
    assert len(clips) == 2  # data.samples = 2 held-out utterances
    wave, rate = sf.read(clips[0])
    assert rate == 22050 and len(wave) == 4 * 256  # 0.05 s rounds to 4 frames

    assert main([*args, "train.steps=30", "--resume"]) == 0
    assert sorted(val_metrics(run)) == [10, 20, 30]
    task, model = load_trained(run / "step-00000030.pt", TeacherTask)
    task.train_data()
    batch = task.collate([task.val_data()[0]])
    log_p = model(batch["wave"], batch["mel"])
    assert log_p.shape == (1, 8 * 256) and torch.isfinite(log_p).all()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.preset=speechbrain-16k"], "holds 'hifigan-22k' features but data.preset is 'speechbrain"),
        (["model.n_mels=40"], "must match preset 'hifigan-22k'"),
        (["data.caches=['/nonexistent/cache']"], "run 'wavesynth preprocess' first"),
        (["model.chanels=3"], "unknown key 'model.chanels'"),
        (["data.preset=22k"], "unknown feature preset '22k'"),
    ],
)
def test_bad_teacher_configs_are_one_line_errors(cache, tmp_path, capsys, overrides, message):
    config = write_config(tmp_path / "teacher.toml", cache, tmp_path / "run")
    assert main(["train", "teacher", "--config", str(config), *TINY, "train.steps=1", *overrides]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wavesynth: error: ") and message in err and err.count("\n") == 1


def test_missing_config_and_missing_teacher(tmp_path, capsys):
    assert main(["train", "teacher", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: no such config file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "student", "--config", str(tmp_path / "student.toml")])
    assert exit_info.value.code == 2
    assert "--teacher" in capsys.readouterr().err
