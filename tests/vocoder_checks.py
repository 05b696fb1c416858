"""Tiny models and the checkpoints a training run would save, for the Vocoder tests."""

from pathlib import Path

from wavesynth.audio import get_preset
from wavesynth.parallel import ParallelWaveNet
from wavesynth.train import save_checkpoint

DATA = Path(__file__).parent / "data"
PRESET = get_preset("speechbrain-16k")

TINY_STUDENT = dict(flow_layers=(4, 2), flow_cycles=(2, 1), channels=8, gate_channels=8)
TINY_TEACHER = dict(layers=4, cycles=2, residual_channels=8, gate_channels=8, skip_channels=8,
                    head="gaussian")


def fake_checkpoint(path, model, preset="speechbrain-16k", caches=("cache/none",)):
    """What a training run saves, as far as export reads it."""
    config = {"model": model.config.to_dict(), "data": {"preset": preset, "caches": list(caches)},
              "train": {"steps": 3}}
    if isinstance(model, ParallelWaveNet):  # a distillation run names its teacher
        config["teacher"] = "runs/teacher/best.pt"
    save_checkpoint({"config": config, "ema": {"module": model.state_dict(), "updates": 3}, "step": 3,
                     "best": {"metric": 1.5, "step": 3}}, path)
    return path
