"""DistributedDataParallel on CPU: two gloo processes launched by torchrun against one process."""

import shutil
import subprocess
import sys

import torch
from toy_task import TOY_SCRIPT, ToyTask, toy_config

from wavesynth.train import CheckpointDir, Trainer, load_checkpoint

FP32 = "train.precision=fp32"


def _assert_close(a: dict, b: dict) -> None:
    """Equal up to float rounding: DDP averages gradients over processes in a different order."""
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=f"{key} differs")


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    # global batch 8 = 2 processes x 2 accumulation steps x micro-batch 2 (one process: micro-batch 4)
    # fp32: under bf16 autocast (precision "auto" on native-bf16 CPUs) micro-batches of 2 and 4 round apart
    two, one, moved = tmp_path / "two", tmp_path / "one", tmp_path / "moved"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(TOY_SCRIPT), f"train.run_dir={two / 'run'}", FP32]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("finished step=12") == 2

    Trainer(ToyTask(toy_config(one, FP32))).fit()
    a = load_checkpoint(CheckpointDir(two / "run").latest())
    b = load_checkpoint(CheckpointDir(one / "run").latest())
    _assert_close(a["model"], b["model"])
    _assert_close(a["ema"]["module"], b["ema"]["module"])
    assert len(a["rng"]) == 2 and a["data"] == b["data"]
    assert (two / "run" / "log.txt").read_text().count("starting ToyTask") == 1  # only rank 0 logs

    # a two-process checkpoint resumes in one process, on the same data order
    (moved / "run").mkdir(parents=True)
    shutil.copy(two / "run" / "step-00000008.pt", moved / "run")
    Trainer(ToyTask(toy_config(moved, FP32)), resume=True).fit()
    c = load_checkpoint(CheckpointDir(moved / "run").latest())
    _assert_close(c["model"], b["model"])
