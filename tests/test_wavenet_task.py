"""`wavesynth train teacher`: the TeacherTask through the CLI, on a tiny preprocessed corpus."""

import math

import pytest
import soundfile as sf
import torch
from task_checks import TINY, val_metrics, write_config

from wavesynth.cli import main
from wavesynth.train import load_trained
from wavesynth.wavenet.task import TeacherTask


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
