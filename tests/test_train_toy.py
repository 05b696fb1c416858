"""The toy task (tests/toy_task.py) learns and reloads from its checkpoint alone."""

from toy_task import ToyTask, metrics_rows, toy_config

from wavesynth.train import Trainer, load_checkpoint, load_trained


def test_toy_task_learns_and_reloads_from_checkpoint_alone(tmp_path):
    config = toy_config(tmp_path, "train.steps=40", "train.val_every=20", "train.lr=3e-2")
    result = Trainer(ToyTask(config)).fit()
    assert result.step == 40 and not result.interrupted and result.best_metric is not None
    task, model = load_trained(tmp_path / "run" / "best.pt", ToyTask)
    assert load_checkpoint(tmp_path / "run" / "best.pt")["config_class"] == "ToyConfig"  # what its config is
    assert task.config == config
    x, y = task.val_data()[:]
    first_val = float(next(r[2] for r in metrics_rows(tmp_path / "run") if r[1] == "val/loss"))
    assert (model(x) - y).pow(2).mean() < first_val
