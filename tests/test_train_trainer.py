import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from toy_task import TOY_SCRIPT, ToyTask, assert_same_state, final_state, metrics_rows, toy_config

from wavesynth.audio import preprocess
from wavesynth.cli import main
from wavesynth.train import CheckpointDir, NonFiniteError, Trainer, load_checkpoint
from wavesynth.train.optim import lr_factor


@pytest.mark.parametrize("stop_after_step", [4, 7])  # 4.5 steps per epoch: stops mid-epoch and mid-step
def test_resume_continues_exactly(tmp_path, stop_after_step):
    """N steps straight == stop part-way + resume, bit for bit (model, optimiser, schedule, EMA), with
    dropout and numpy/python/torch randomness in the data and loss."""
    overrides = ["model.dropout=0.2", "data.random=true"]
    straight = toy_config(tmp_path / "a", *overrides)
    Trainer(ToyTask(straight)).fit()

    config = toy_config(tmp_path / "b", *overrides)
    task = ToyTask(config)
    trainer = Trainer(task)
    calls_per_step = config.train.grad_accum
    task.on_loss = lambda call: call == calls_per_step * (stop_after_step - 1) and trainer.stop()
    result = trainer.fit()
    assert result.interrupted and result.step == stop_after_step
    assert result.checkpoint == CheckpointDir(config.train.run_dir).step_path(stop_after_step)

    resumed = Trainer(ToyTask(config), resume=True)
    assert resumed.step == stop_after_step
    assert resumed.fit().step == config.train.steps
    a, b = final_state(tmp_path / "a" / "run"), final_state(tmp_path / "b" / "run")
    assert_same_state(a, b)
    assert a["best"] == b["best"]
    logged = [[r[:2] for r in metrics_rows(tmp_path / x / "run")] for x in "ab"]
    assert logged[0] == logged[1]


def test_resume_is_exact_with_dataloader_workers(tmp_path):
    overrides = ["train.num_workers=1", "train.steps=6", "model.dropout=0.2"]
    Trainer(ToyTask(toy_config(tmp_path / "a", *overrides))).fit()
    task = ToyTask(toy_config(tmp_path / "b", *overrides))
    trainer = Trainer(task)
    task.on_loss = lambda call: call == 4 and trainer.stop()
    assert trainer.fit().step == 3
    Trainer(ToyTask(toy_config(tmp_path / "b", *overrides)), resume=True).fit()
    assert_same_state(final_state(tmp_path / "a" / "run"), final_state(tmp_path / "b" / "run"))


def test_existing_run_needs_resume_and_resume_of_empty_dir_starts_fresh(tmp_path):
    config = toy_config(tmp_path, "train.steps=4")
    Trainer(ToyTask(config), resume=True).fit()  # nothing to resume: starts at step 0
    with pytest.raises(ValueError, match="already holds checkpoints"):
        Trainer(ToyTask(config))
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "starting at step 0" in log


def test_resume_reports_changed_settings(tmp_path):
    Trainer(ToyTask(toy_config(tmp_path, "train.steps=4"))).fit()
    trainer = Trainer(ToyTask(toy_config(tmp_path, "train.steps=8")), resume=True)
    assert trainer.fit().step == 8
    assert "changed since the checkpoint: train.steps: 4 -> 8" in (tmp_path / "run" / "log.txt").read_text()


def test_resume_with_another_validation_set_forgets_the_best_so_far(tmp_path):
    """data.val_size changed on --resume: val/loss now measures something else, so the stored best is
    forgotten (logged) and the next validation writes best.pt whatever its loss."""
    Trainer(ToyTask(toy_config(tmp_path, "train.steps=8"))).fit()
    best_before = load_checkpoint(tmp_path / "run" / "best.pt")["step"]
    trainer = Trainer(ToyTask(toy_config(tmp_path, "train.steps=12", "data.val_size=3")), resume=True)
    assert (trainer.best_metric, trainer.best_step) == (None, 0)
    trainer.fit()
    assert trainer.best_step >= 12 > best_before
    assert load_checkpoint(tmp_path / "run" / "best.pt")["step"] == trainer.best_step
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "val/loss now measures something else: the best so far" in log
    unchanged = Trainer(ToyTask(toy_config(tmp_path, "train.steps=16", "data.val_size=3")), resume=True)
    assert unchanged.best_step == trainer.best_step  # nothing changed this time: the best is kept


def test_nonfinite_steps_are_skipped_and_logged(tmp_path):
    # grad_accum 2: loss calls 2 and 3 belong to step 2, call 8 to step 5
    config = toy_config(tmp_path, "data.nan_calls=[3, 8]")
    reference = Trainer(ToyTask(toy_config(tmp_path / "ref")))
    trainer = Trainer(ToyTask(config))
    weights_before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert trainer.fit().step == 12
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "step 2: loss or gradient not finite, update skipped (1 in a row)" in log
    assert "step 5: loss or gradient not finite, update skipped (1 in a row)" in log
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())
    assert trainer.ema.updates == 10
    reference.fit()
    assert reference.ema.updates == 12
    assert any(not torch.equal(weights_before[k], v) for k, v in trainer.model.state_dict().items())


def test_too_many_nonfinite_steps_stop_with_a_clear_message(tmp_path):
    config = toy_config(tmp_path, "data.nan_calls=[4, 5, 6, 7, 8, 9]", "train.max_nonfinite=3")
    with pytest.raises(NonFiniteError, match="not finite for 3 steps in a row"):
        Trainer(ToyTask(config)).fit()


def test_loss_without_total_is_a_clear_error(tmp_path):
    task = ToyTask(toy_config(tmp_path))
    task.loss = lambda model, batch: {"mse": model(batch[0]).mean()}
    with pytest.raises(ValueError, match="'loss' entry"):
        Trainer(task).fit()


def test_batch_must_split_over_accumulation(tmp_path):
    with pytest.raises(ValueError, match="divisible"):
        Trainer(ToyTask(toy_config(tmp_path, "train.batch_size=9")))


def test_run_folder_has_config_metrics_and_tensorboard_events(tmp_path):
    Trainer(ToyTask(toy_config(tmp_path, "train.keep_last=2"))).fit()
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("*.pt")) == ["best.pt", "step-00000008.pt", "step-00000012.pt"]
    assert "[train]" in (run / "config.toml").read_text()
    names = {row[1] for row in metrics_rows(run)}
    assert {"train/loss", "train/mse", "train/lr", "train/grad_norm", "train/samples_per_s",
            "val/loss", "val/mse"} <= names
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    clips = sorted(p.name for p in (run / "samples").glob("*.wav"))
    assert clips == ["00000004_tone.wav", "00000008_tone.wav", "00000012_tone.wav"]
    wave, rate = sf.read(run / "samples" / clips[0])
    assert rate == 8000 and len(wave) == 800
    summary = [line for line in (run / "log.txt").read_text().splitlines() if "val loss" in line]
    assert len(summary) == 3 and "step 12/12" in summary[-1]


def test_sigint_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    """A real SIGINT to a training process: it finishes the step, saves, exits 0; resume completes."""
    run = tmp_path / "run"
    args = [sys.executable, str(TOY_SCRIPT), f"train.run_dir={run}", "train.steps=400",
            "train.save_every=1000", "train.val_every=1000", "data.sleep=0.01"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (run / "metrics.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)  # a few steps in
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "interrupted=True" in out and "Traceback" not in err
    steps = CheckpointDir(run).steps()
    assert len(steps) == 1 and 0 < steps[0] < 400
    assert f"stopped at step {steps[0]}; checkpoint saved" in (run / "log.txt").read_text()
    config = toy_config(tmp_path, "train.steps=400", "train.save_every=1000", "train.val_every=1000")
    assert Trainer(ToyTask(config), resume=True).step == steps[0]


def test_sigkill_mid_write_leaves_previous_checkpoint_loadable(tmp_path):
    """Kill -9 a run while it writes a checkpoint (slowed down to be caught mid-write)."""
    run = tmp_path / "run"
    args = [sys.executable, str(TOY_SCRIPT), "--slow-save", f"train.run_dir={run}", "train.steps=100",
            "train.save_every=2", "train.val_every=1000"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    partial = []
    while time.monotonic() < deadline and process.poll() is None:
        partial = [p for p in run.glob(".step-00000004.pt.tmp-*") if p.stat().st_size > 0]
        if partial:
            break
        time.sleep(0.01)
    assert partial, process.stderr.read() if process.poll() is not None else "no partial write seen"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert CheckpointDir(run).steps() == [2]
    assert load_checkpoint(run / "step-00000002.pt")["step"] == 2
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint(partial[0])  # the partial file is damaged, and never given a checkpoint's name
    config = toy_config(tmp_path, "train.steps=4", "train.save_every=2", "train.val_every=1000")
    trainer = Trainer(ToyTask(config), resume=True)
    assert trainer.step == 2 and not list(run.glob(".*.tmp-*"))
    assert trainer.fit().step == 4


def test_resume_applies_a_changed_lr_schedule_from_the_resumed_step(tmp_path):
    """train.lr, min_lr, schedule and steps changed on --resume: every update after it follows the new
    schedule (lr * lr_factor(step)), and the log says so."""
    Trainer(ToyTask(toy_config(tmp_path, "train.steps=8"))).fit()
    config = toy_config(tmp_path, "train.steps=12", "train.lr=1e-3", "train.min_lr=1e-4",
                        "train.schedule=linear")
    task = ToyTask(config)
    trainer = Trainer(task, resume=True)
    used: list[float] = []
    task.on_loss = lambda call: used.append(trainer.optimizer.param_groups[0]["lr"])
    assert trainer.fit().step == 12
    factor = lr_factor(config.train)
    expected = [1e-3 * factor(step) for step in range(8, 12) for _ in range(config.train.grad_accum)]
    assert used == expected
    assert trainer.scheduler.get_last_lr()[0] == pytest.approx(1e-4)  # linear decay ends at the new min_lr
    assert {g["lr"] for g in trainer.optimizer.param_groups} == {trainer.scheduler.get_last_lr()[0]}
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "changed since the checkpoint: train.lr: 0.01 -> 0.001" in log
    assert f"the config's lr schedule applies from step 8: lr {expected[0]:.3g} (the checkpoint's 0)" in log


def test_resume_with_fewer_steps_than_done_is_refused(tmp_path):
    Trainer(ToyTask(toy_config(tmp_path, "train.steps=8"))).fit()
    with pytest.raises(ValueError, match=r"train.steps \(4\) is below the step of .* \(8\); resume with "
                                         r"train.steps >= 8"):
        Trainer(ToyTask(toy_config(tmp_path, "train.steps=4")), resume=True)


def test_resume_after_a_model_size_change_names_the_setting(tmp_path):
    Trainer(ToyTask(toy_config(tmp_path, "train.steps=4"))).fit()
    with pytest.raises(ValueError) as error:
        Trainer(ToyTask(toy_config(tmp_path, "train.steps=4", "model.hidden=16")), resume=True)
    message = str(error.value)
    assert "model.hidden: 8 -> 16" in message and "train.run_dir" in message and "\n" not in message


def test_resume_falls_back_past_a_corrupt_newest_checkpoint(tmp_path):
    run = tmp_path / "run"
    Trainer(ToyTask(toy_config(tmp_path, "train.steps=8"))).fit()
    newest = run / "step-00000008.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated from outside (disk, copy)
    trainer = Trainer(ToyTask(toy_config(tmp_path, "train.steps=12")), resume=True)
    assert trainer.step == 4
    log = (run / "log.txt").read_text()
    assert f"cannot read checkpoint {newest}: truncated or corrupt?" in log
    assert "falling back to the previous checkpoint" in log
    assert f"resumed from {run / 'step-00000004.pt'} at step 4" in log
    assert trainer.fit().step == 12
    assert load_checkpoint(newest)["step"] == 8  # rewritten when the run got there again


def test_resume_with_no_readable_checkpoint_is_a_one_line_error(tmp_path):
    run = tmp_path / "run"
    Trainer(ToyTask(toy_config(tmp_path, "train.steps=8"))).fit()
    for path in CheckpointDir(run).steps():
        CheckpointDir(run).step_path(path).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError) as error:
        Trainer(ToyTask(toy_config(tmp_path, "train.steps=12")), resume=True)
    message = str(error.value)
    assert message.startswith(f"no readable checkpoint in {run}") and "step-00000004.pt" in message
    assert "\n" not in message


def test_validation_loss_is_the_exact_mean_over_a_ragged_last_batch(tmp_path):
    """5 validation items in batches of 2, 2 and 1: the mean over the items, each weighted once."""
    config = toy_config(tmp_path, "data.val_size=5", "train.val_batch_size=2", "train.steps=2",
                        "train.val_every=2", "train.warmup_steps=0", "train.precision=fp32")
    trainer = Trainer(task := ToyTask(config))
    trainer.fit()
    x, y = task.val_data()[:]
    model = trainer.ema.module
    with torch.no_grad():
        expected = task.validate(model, (x, y))["loss"].item()
        by_batch = [task.validate(model, (x[i:i + 2], y[i:i + 2]))["loss"].item() for i in (0, 2, 4)]
    assert trainer.best_metric == pytest.approx(expected, rel=1e-6)
    assert abs(sum(by_batch) / 3 - expected) > 1e-4  # a plain mean of the batch means would differ


@pytest.fixture(scope="module")
def short_cache(tmp_path_factory) -> Path:
    """A hifigan-22k feature cache of four 0.3 s chirps (26 mel frames each; one in the validation split)."""
    root = tmp_path_factory.mktemp("corpus")
    t = np.arange(int(22050 * 0.3)) / 22050
    for i in range(4):
        wave = 0.3 * np.sin(2 * np.pi * (300 + 100 * i) * t)
        sf.write(root / f"u{i}.wav", wave.astype(np.float32), 22050)
    out = tmp_path_factory.mktemp("cache")
    preprocess("folder", root, out, "hifigan-22k", trim_db=None, valid_fraction=0.25, pitch_tracker=None,
               progress=False, workers=1)
    return out


@pytest.mark.parametrize(("setting", "split"), [("segment_frames", "train"), ("val_segment_frames", "valid")])
def test_crops_longer_than_every_utterance_are_refused(short_cache, tmp_path, capsys, setting, split):
    """A crop longer than the longest utterance would be mostly padding (and a huge one took the whole
    machine's memory): one line naming the setting and the bound."""
    config = tmp_path / "teacher.toml"
    config.write_text(f'[data]\ncaches = ["{short_cache}"]\n\n[train]\nrun_dir = "{tmp_path / "run"}"\n')
    tiny = ["model.layers=2", "model.cycles=1", "model.residual_channels=8", "model.gate_channels=8",
            "model.skip_channels=8", "data.segment_frames=4", "data.val_segment_frames=8",
            "train.batch_size=2", "train.progress=false"]
    assert main(["train", "teacher", "--config", str(config), *tiny, f"data.{setting}=10000000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"wavesynth: error: data.{setting} (10000000) is longer than every {split!r} "
                          "utterance") and "at most 26" in err and err.count("\n") == 1


def test_a_run_dir_that_cannot_be_written_is_a_one_line_error_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = toy_config(tmp_path, f"train.run_dir={blocker / 'run'}")
    with pytest.raises(ValueError, match=r"train.run_dir '.*a-file/run' cannot be created or written: Not a "
                                         r"directory"):
        Trainer(ToyTask(config))
