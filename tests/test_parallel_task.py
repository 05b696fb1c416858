"""`wavesynth train student`: distillation through the CLI, from a tiny teacher on a tiny corpus."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import soundfile as sf
import torch
from task_checks import STUDENT, TINY, val_metrics, write_config

from wavesynth.audio import MelExtractor, get_preset
from wavesynth.cli import main
from wavesynth.parallel import ParallelWaveNet
from wavesynth.parallel.task import DistillConfig, StudentTask
from wavesynth.train import load_config, load_trained
from wavesynth.wavenet import WaveNet, WaveNetConfig


@pytest.fixture(scope="module")
def teacher(cache, tmp_path_factory) -> Path:
    """A tiny Gaussian-head teacher trained for two steps."""
    folder = tmp_path_factory.mktemp("teacher")
    config = write_config(folder / "teacher.toml", cache, folder / "run")
    args = ["train", "teacher", "--config", str(config), *TINY, "model.head=gaussian", "train.steps=2",
            "data.samples=0"]
    assert main(args) == 0
    return folder / "run" / "step-00000002.pt"


@pytest.mark.slow
@pytest.mark.parametrize("kl", ["sampled", "gaussian"])
def test_train_student_logs_every_term_writes_audio_and_resumes(cache, teacher, tmp_path, kl):
    config, run = write_config(tmp_path / "student.toml", cache, tmp_path / "run"), tmp_path / "run"
    noise = "gaussian" if kl == "gaussian" else "logistic"
    args = ["train", "student", "--config", str(config), "--teacher", str(teacher), *STUDENT,
            f"loss.kl={kl}", f"model.noise={noise}", "train.val_every=2", "train.save_every=2"]
    assert main([*args, "train.steps=2"]) == 0
    metrics = val_metrics(run)[2]
    assert set(metrics) == {"loss", "kl", "teacher_nll", "entropy", "power", "spectral", "log_mel_l1"}
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    # val/loss (which picks best.pt) is the objective: all weights 1, plus λ·penalty for the closed form
    terms = metrics["kl"] + metrics["power"] + metrics["spectral"] + metrics["log_mel_l1"]
    closed_form = kl == "gaussian"
    assert metrics["loss"] > terms if closed_form else math.isclose(metrics["loss"], terms, rel_tol=1e-5)
    train_terms = (run / "metrics.csv").read_text()
    for term in ["kl", "entropy", "power", "spectral", "mel", "contrastive"]:
        assert f"train/{term}" in train_terms
    assert ("train/log_scale_penalty" in train_terms) == (kl == "gaussian")
    clips = sorted((run / "samples").glob("00000002_*.wav"))
    wave, rate = sf.read(clips[0])
    assert len(clips) == 2 and rate == 22050 and len(wave) == 4 * 256

    assert main([*args, "train.steps=3", "--resume"]) == 0
    task, student = load_trained(run / "step-00000003.pt", StudentTask)  # no teacher needed
    assert isinstance(student, ParallelWaveNet) and task.config.teacher == str(teacher)
    assert not any(key.startswith("teacher") for key in torch.load(run / "step-00000003.pt")["model"])
    assert student.sample(torch.zeros(1, 80, 3)).shape == (1, 3 * 256)


def test_two_student_steps_validate_to_the_weighted_sum_of_the_terms(cache, teacher, tmp_path):
    """The fast version of the test above: 2 steps, one validation, no audio, no resume. val/loss (which
    picks best.pt) is kl_weight·KL + power_weight·power + spectral_weight·spectral + mel_weight·log-mel L1
    (StudentTask.validate; the sampled KL has no log-scale penalty), with weights other than 1."""
    config, run = write_config(tmp_path / "student.toml", cache, tmp_path / "run"), tmp_path / "run"
    weights = {"kl": 0.5, "power": 2.0, "spectral": 0.25, "log_mel_l1": 3.0}
    args = ["train", "student", "--config", str(config), "--teacher", str(teacher), *STUDENT,
            "loss.kl=sampled", "train.steps=2", "train.val_every=2", "train.save_every=2", "data.samples=0",
            f"loss.kl_weight={weights['kl']}", f"loss.power_weight={weights['power']}",
            f"loss.spectral_weight={weights['spectral']}", f"loss.mel_weight={weights['log_mel_l1']}"]
    assert main(args) == 0
    metrics = val_metrics(run)
    assert sorted(metrics) == [2]
    assert set(metrics[2]) == {"loss", "kl", "teacher_nll", "entropy", "power", "spectral", "log_mel_l1"}
    assert all(math.isfinite(value) for value in metrics[2].values())
    weighted = sum(weight * metrics[2][term] for term, weight in weights.items())
    assert math.isclose(metrics[2]["loss"], weighted, rel_tol=1e-5)


def test_bad_student_configs_are_one_line_errors(tmp_path, capsys):
    config = write_config(tmp_path / "student.toml", tmp_path / "cache", tmp_path / "run")
    base = ["train", "student", "--config", str(config), "--teacher", str(tmp_path / "teacher.pt"), *STUDENT]
    cases = [
        (["loss.kl=gaussian"], "needs a Gaussian student"),
        (["model.n_mels=40"], "must match preset"),
        (["loss.samples=0"], "loss.samples must be >= 1"),
        (["model.flow_cycles=[1]"], "one cycle count per flow"),
        (["loss.spectral_ffts=[4096]"], "needs crops longer than 2048 samples"),
        (["loss.spectral_ffts=[]"], "spectral_ffts must list STFT sizes"),
        (["loss.kl_weight=0", "loss.power_weight=0", "loss.spectral_weight=0", "loss.mel_weight=0"],
         "the objective is empty"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("wavesynth: error: ") and message in err and err.count("\n") == 1, err


def test_the_teacher_must_exist_and_be_a_teacher(tmp_path):
    config = load_config(DistillConfig)
    with pytest.raises(ValueError, match="no teacher"):
        StudentTask(config).teacher  # noqa: B018
    config.teacher = str(tmp_path / "none.pt")
    with pytest.raises(ValueError, match="none.pt: no such teacher checkpoint"):
        StudentTask(config).teacher  # noqa: B018
    assert config.model.flow_layers == (10, 10, 10, 30) and config.loss.contrastive_weight == 0.3


def test_set_teacher_freezes_it_and_checks_that_it_fits():
    task = StudentTask(load_config(DistillConfig))
    small = dict(layers=2, cycles=1, residual_channels=4, gate_channels=4, skip_channels=4)
    teacher = WaveNet(WaveNetConfig(**small)).train()
    task.set_teacher(teacher)
    assert task.teacher is teacher and not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(ValueError, match="not differentiable"):
        task.set_teacher(WaveNet(WaveNetConfig(**small, head="mulaw")))
    with pytest.raises(ValueError, match="n_mels, hop_length"):
        task.set_teacher(WaveNet(WaveNetConfig(**small, n_mels=40)))
    clarinet = load_config(DistillConfig, overrides=["loss.kl=gaussian", "model.noise=gaussian"])
    with pytest.raises(ValueError, match="needs a teacher with the Gaussian head"):
        StudentTask(clarinet).set_teacher(teacher)



def test_the_mel_term_is_the_log_mel_l1_to_the_real_audio_and_trains_the_student():
    """loss.mel_weight adds its weight times mean |log mel(x) - log mel(y)|, the validation's log_mel_l1."""
    overrides = ["model.flow_layers=[2, 2]", "model.flow_cycles=[1, 1]", "model.channels=8",
                 "model.gate_channels=8", "model.noise=gaussian", "loss.kl=gaussian",
                 "loss.contrastive_weight=0", "data.segment_frames=8"]
    teacher = WaveNet(WaveNetConfig(layers=2, cycles=1, residual_channels=8, gate_channels=8, skip_channels=8,
                                    head="gaussian"))
    tasks = {}
    for weight in (0, 3):
        config = load_config(DistillConfig, None, [*overrides, f"loss.mel_weight={weight}"])
        tasks[weight] = StudentTask(config)
        tasks[weight].set_teacher(teacher)
    student = tasks[3].build_model()
    extractor = MelExtractor(get_preset("hifigan-22k"))
    wave = 0.1 * torch.randn(2, 8 * 256)
    batch = {"wave": wave, "mel": extractor.log_mel(wave)}
    terms = {}
    for weight, task in tasks.items():
        torch.manual_seed(1)
        terms[weight] = task.loss(student, batch)
    torch.manual_seed(1)
    x, _, _ = student(student.draw_noise(wave.shape), batch["mel"])
    mel_l1 = (extractor.log_mel(x) - batch["mel"]).abs().mean()
    assert "mel" not in terms[0]
    torch.testing.assert_close(terms[3]["mel"], mel_l1)
    torch.testing.assert_close(terms[3]["loss"], terms[0]["loss"] + 3 * mel_l1)
    terms[3]["mel"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    validation = tasks[3].validate(student, batch)
    assert validation["log_mel_l1"] > 0 and validation["loss"] > 3 * validation["log_mel_l1"]


def test_without_the_kl_a_training_step_never_runs_the_teacher():
    """kl_weight = 0 (and no contrastive term) trains on the reconstruction terms alone, with no teacher pass;
    validation still reports the KL against the teacher."""
    overrides = ["model.flow_layers=[2]", "model.flow_cycles=[1]", "model.channels=8",
                 "model.gate_channels=8", "loss.kl_weight=0", "loss.contrastive_weight=0",
                 "loss.mel_weight=1", "data.segment_frames=8"]
    task = StudentTask(load_config(DistillConfig, None, overrides))
    teacher = WaveNet(WaveNetConfig(layers=2, cycles=1, residual_channels=8, gate_channels=8,
                                    skip_channels=8))
    task.set_teacher(teacher)
    calls, distribution_params = [], teacher.distribution_params
    teacher.distribution_params = lambda *args: calls.append(1) or distribution_params(*args)
    student = task.build_model()
    wave = 0.1 * torch.randn(2, 8 * 256)
    batch = {"wave": wave, "mel": MelExtractor(get_preset("hifigan-22k")).log_mel(wave)}
    terms = task.loss(student, batch)
    assert not calls and "kl" not in terms
    torch.testing.assert_close(terms["loss"], terms["power"] + terms["mel"])
    assert task.validate(student, batch)["kl"].isfinite() and calls


def test_a_pitch_aware_teacher_and_student_train_on_the_cache_f0(cache, tmp_path):
    """Both excitations come from the cache's pitch labels, the teacher's into the KL; the trained student's
    output depends on the F0 it is driven by."""
    teacher_run, student_run = tmp_path / "teacher", tmp_path / "student"
    sine = ["model.excitation=sine", "model.harmonics=2", "train.steps=2", "data.samples=0"]
    config = write_config(tmp_path / "teacher.toml", cache, teacher_run)
    assert main(["train", "teacher", "--config", str(config), *TINY, "model.head=gaussian", *sine]) == 0
    config = write_config(tmp_path / "student.toml", cache, student_run)
    teacher = str(teacher_run / "step-00000002.pt")
    assert main(["train", "student", "--config", str(config), "--teacher", teacher, *STUDENT, *sine,
                 "loss.kl=gaussian", "model.noise=gaussian", "train.val_every=2"]) == 0
    metrics = val_metrics(student_run)[2]
    assert all(math.isfinite(v) for v in metrics.values()) and metrics["kl"] != 0
    task, student = load_trained(student_run / "step-00000002.pt", StudentTask)
    assert task.uses_pitch and task.teacher.config.excitation == "sine"
    task.train_data()
    batch = task.collate([task.val_data()[0]])
    assert batch["f0"].shape == batch["voiced"].shape == (1, 8)  # the cache's labels of the crop
    z = torch.randn_like(batch["wave"])
    with torch.no_grad():
        low, high = (student(z, batch["mel"], task.excitation(task.config.model, {**batch, "f0": f0}))[0]
                     for f0 in (torch.full((1, 8), 150.0), torch.full((1, 8), 225.0)))
    assert (low - high).abs().max() > 1e-6
