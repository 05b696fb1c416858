"""The smallest complete use of wavesynth.train: fit y = sin(3x) with an MLP.

    python recipes/toy/train.py --config recipes/toy/config.toml [--resume] [train.lr=3e-3 ...]
    torchrun --nproc_per_node=2 recipes/toy/train.py --config recipes/toy/config.toml
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import TensorDataset

from wavesynth.train import Task, TrainConfig, Trainer, load_config


@dataclass
class ModelConfig:
    hidden: int = 64


@dataclass
class ToyConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class SineTask(Task):
    config_class = ToyConfig

    def build_model(self) -> nn.Module:
        h = self.config.model.hidden
        return nn.Sequential(nn.Linear(1, h), nn.Tanh(), nn.Linear(h, h), nn.Tanh(), nn.Linear(h, 1))

    def _data(self, n: int, seed: int) -> TensorDataset:
        x = torch.rand(n, 1, generator=torch.Generator().manual_seed(seed)) * 4 - 2
        return TensorDataset(x, torch.sin(3 * x))

    def train_data(self) -> TensorDataset:
        return self._data(4096, seed=1)

    def val_data(self) -> TensorDataset:
        return self._data(512, seed=2)

    def loss(self, model: nn.Module, batch) -> dict[str, torch.Tensor]:
        x, y = batch
        return {"loss": (model(x) - y).pow(2).mean()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="TOML config file")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("overrides", nargs="*", help="key=value settings, e.g. train.lr=1e-3")
    args = parser.parse_args()
    config = load_config(ToyConfig, args.config, args.overrides)
    result = Trainer(SineTask(config), resume=args.resume).fit()
    print(f"step {result.step}, best validation loss {result.best_metric}")


if __name__ == "__main__":
    main()
