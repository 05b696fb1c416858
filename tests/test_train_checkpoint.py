import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from wavesynth.train import CheckpointDir, load_checkpoint, save_checkpoint


def test_save_is_atomic_and_load_round_trips(tmp_path):
    state = {"step": 3, "w": torch.arange(5.0), "nested": {"t": (1, 2.5, None, "x")}}
    save_checkpoint(state, tmp_path / "a.pt")
    assert os.listdir(tmp_path) == ["a.pt"]
    loaded = load_checkpoint(tmp_path / "a.pt")
    assert loaded["step"] == 3 and loaded["nested"] == state["nested"]
    assert torch.equal(loaded["w"], state["w"])


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_loading_never_runs_code_from_the_file(tmp_path):
    torch.save({"evil": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_keep_last_and_best(tmp_path):
    folder = CheckpointDir(tmp_path, keep_last=2)
    for step in (10, 20, 30):
        folder.save({"step": step})
    folder.save({"step": 20}, best=True)
    assert folder.steps() == [20, 30] and folder.latest() == tmp_path / "step-00000030.pt"
    assert load_checkpoint(folder.best_path)["step"] == 20


KILLED_WRITER = """
import sys, torch
from wavesynth.train import CheckpointDir
folder = CheckpointDir(sys.argv[1], keep_last=2)
step = 0
while True:
    step += 1
    folder.save({"step": step, "weights": torch.full((1_000_000,), float(step))})
"""


def test_sigkill_at_random_moments_never_leaves_a_damaged_checkpoint(tmp_path):
    """A writer saving 4 MB checkpoints in a loop is killed at random moments, three times over;
    every checkpoint file left behind loads and holds what it claims."""
    rng = random.Random(0)
    for attempt in range(3):
        folder = CheckpointDir(tmp_path / str(attempt))
        writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(folder.folder)])
        deadline = time.monotonic() + 60
        while not folder.steps() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        assert folder.steps(), f"attempt {attempt}: no checkpoint written"
        for step in folder.steps():
            state = load_checkpoint(folder.step_path(step))
            assert state["step"] == step and torch.all(state["weights"] == step)
        folder.remove_stale_temporaries()
        assert not list(folder.folder.glob(".*.tmp-*"))


def test_load_newest_skips_unreadable_checkpoints_and_says_why(tmp_path):
    folder = CheckpointDir(tmp_path)
    for step in (1, 2, 3):
        folder.save({"step": step, "w": torch.zeros(1000)})
    folder.step_path(3).write_bytes(folder.step_path(3).read_bytes()[:500])  # truncated
    path, state, errors = folder.load_newest()
    assert (path, state["step"]) == (folder.step_path(2), 2)
    assert len(errors) == 1 and errors[0].startswith(f"cannot read checkpoint {folder.step_path(3)}")
    for step in (1, 2):
        folder.step_path(step).write_bytes(b"")
    with pytest.raises(ValueError) as error:
        folder.load_newest()
    assert str(error.value).startswith(f"no readable checkpoint in {tmp_path} (cannot read checkpoint")
    assert str(error.value).count("cannot read checkpoint") == 3 and "\n" not in str(error.value)
