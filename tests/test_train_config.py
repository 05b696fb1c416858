from dataclasses import dataclass, field
from typing import Literal

import pytest

from wavesynth.train import TrainConfig, dump_toml, from_dict, load_config, save_config
from wavesynth.train.config import upgrade_dict


@dataclass
class ModelConfig:
    channels: int = 16
    kind: Literal["mol", "gaussian"] = "mol"
    dilations: tuple[int, ...] = (1, 2, 4)
    speaker: str | None = None


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-3, steps=500))


def test_file_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[model]\nchannels = 32\ndilations = [1, 2]\n[train]\nbatch_size = 4\n')
    config = load_config(Config, path, ["train.lr=2e-3", "model.kind=gaussian", "train.run_dir=runs/x",
                                        "model.speaker='p225'", "train.betas=[0.8, 0.9]"])
    assert config.model == ModelConfig(32, "gaussian", (1, 2), "p225")
    assert config.train.lr == 2e-3 and config.train.batch_size == 4 and config.train.run_dir == "runs/x"
    assert config.train.betas == (0.8, 0.9)
    assert config.train.steps == 500  # a partial [train] table keeps the parent's defaults


def test_round_trip_through_toml(tmp_path):
    config = load_config(Config, overrides=["model.speaker=a \"quoted\" name", "train.min_lr=1e-5",
                                            "train.grad_clip=0"])
    save_config(config, tmp_path / "config.toml")
    assert load_config(Config, tmp_path / "config.toml") == config
    assert "speaker" not in dump_toml({"model": {"speaker": None}})


@pytest.mark.parametrize(("data", "message"), [
    ({"train": {"lrr": 1.0}}, "unknown key 'train.lrr' in [train]; valid keys: run_dir, steps,"),
    ({"modle": {}}, "unknown key 'modle' in the config; valid keys: model, train"),
    ({"train": {"lr": "fast"}}, "train.lr must be a number, got 'fast'"),
    ({"train": {"steps": 1.5}}, "train.steps must be an integer, got 1.5"),
    ({"train": {"bf16": 1}}, "train.bf16 must be true or false, got 1"),
    ({"train": {"precision": "fp16"}}, "train.precision must be one of 'auto', 'fp32', 'bf16', got 'fp16'"),
    ({"train": {"steps": True}}, "train.steps must be an integer, got True"),
    ({"train": {"lr": -1}}, "train.lr must be a finite number > 0, got -1.0"),
    ({"train": {"optimizer": "sgd"}}, "train.optimizer must be one of 'adam', 'adamw', got 'sgd'"),
    ({"train": {"betas": [0.9]}}, "train.betas must be a list of 2 values, got [0.9]"),
    ({"train": {"ema_decay": 1.0}}, "train.ema_decay must lie in [0, 1), got 1.0"),
    ({"train": {"ema_decay": -0.1}}, "train.ema_decay must lie in [0, 1), got -0.1"),
    ({"train": {"ema_decay": float("nan")}}, "train.ema_decay must lie in [0, 1), got nan"),
    ({"train": {"lr": float("inf")}}, "train.lr must be a finite number > 0, got inf"),
    ({"train": {"lr": float("nan")}}, "train.lr must be a finite number > 0, got nan"),
    ({"train": {"lr": 0}}, "train.lr must be a finite number > 0, got 0.0"),
    ({"train": {"lr": 0, "schedule": "constant"}}, "train.lr must be a finite number > 0, got 0.0"),
    ({"train": {"min_lr": float("nan")}}, "train.min_lr must be between 0 and lr, got nan"),
    ({"train": {"steps": 0}}, "train.steps must be >= 1, got 0"),
    ({"train": {"grad_clip": -1}}, "train.grad_clip must be >= 0 (0 disables clipping), got -1.0"),
    ({"train": {"grad_clip": float("inf")}}, "train.grad_clip must be finite (0 disables clipping), got inf"),
    ({"train": {"eps": float("inf")}}, "train.eps must be a finite number > 0, got inf"),
    ({"train": {"weight_decay": float("nan")}}, "train.weight_decay must be a finite number >= 0, got nan"),
    ({"model": {"dilations": [1, "2"]}}, "model.dilations[1] must be an integer, got '2'"),
    ({"model": 3}, "model must be a table, got 3"),
])
def test_bad_values_name_the_key(data, message):
    with pytest.raises(ValueError) as error:
        from_dict(Config, data)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(("override", "message"), [
    ("train.lrr=1", "unknown key 'train.lrr' in [train]; valid keys:"),
    ("lr=1", "unknown key 'lr' in the config; valid keys: model, train"),
    ("train=1", "'train' is a table"),
    ("train.lr.x=1", "'train.lr' is not a table"),
    ("train.lr", "must look like key=value"),
    ("train.lr=abc", "train.lr must be a number, got 'abc'"),
    ("train.precision=fp16", "train.precision must be one of 'auto', 'fp32', 'bf16', got 'fp16'"),
    ("train.bf16=yes", "train.bf16 must be true or false, got 'yes'"),
])
def test_bad_overrides(override, message):
    with pytest.raises(ValueError, match=None) as error:
        load_config(Config, overrides=[override])
    assert message in str(error.value)


def test_bad_toml_file_is_a_value_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train\n")
    with pytest.raises(ValueError, match="bad.toml is not valid TOML"):
        load_config(Config, path)


@pytest.mark.parametrize(("override", "message"), [
    ("train.lr=inf", "train.lr must be a finite number > 0, got inf"),
    ("train.lr=nan", "train.lr must be a finite number > 0, got nan"),
    ("train.lr=-1e-3", "train.lr must be a finite number > 0, got -0.001"),
    ("train.steps=0", "train.steps must be >= 1, got 0"),
])
def test_bad_numbers_on_the_command_line_are_one_line_errors(override, message):
    with pytest.raises(ValueError) as error:
        load_config(Config, overrides=[override])
    assert str(error.value) == message


def test_toml_file_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[train]\nrun_dir = "runs/caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ValueError) as error:
        load_config(Config, path)
    assert str(error.value).startswith(f"{path} is not UTF-8 text") and "\n" not in str(error.value)


def test_precision_defaults_to_auto_and_is_saved_under_its_own_name(tmp_path):
    config = load_config(Config)
    assert config.train.precision == "auto"
    save_config(config, tmp_path / "config.toml")
    text = (tmp_path / "config.toml").read_text()
    assert 'precision = "auto"' in text and "bf16" not in text
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16")


@pytest.mark.parametrize(("table", "overrides", "precision"), [
    ("bf16 = true", [], "auto"),  # the old default: bf16 on CUDA, fp32 on a CPU without native bf16
    ("bf16 = false", [], "fp32"),
    ("bf16 = false\nprecision = \"bf16\"", [], "bf16"),  # the new key wins
    ("bf16 = true", ["train.precision=fp32"], "fp32"),  # an override of an old run's config.toml
    ("bf16 = true", ["train.bf16=false"], "fp32"),  # the old key as an override still works
    ('precision = "bf16"', ["train.bf16=false"], "fp32"),  # ... and overrides the file
    ("", ["train.bf16=true"], "auto"),
])
def test_configs_with_the_old_bf16_key_still_load(tmp_path, table, overrides, precision):
    path = tmp_path / "c.toml"
    path.write_text(f"[train]\nsteps = 7\n{table}\n")
    config = load_config(Config, path, overrides)
    assert config.train.precision == precision and config.train.steps == 7 and config.train.lr == 1e-3


def test_old_checkpoint_configs_load_and_upgrade_for_comparison():
    old = {"model": {"channels": 8}, "train": {"steps": 3, "bf16": False}}
    assert from_dict(Config, old).train.precision == "fp32"
    assert from_dict(TrainConfig, {"bf16": True}).precision == "auto"
    upgraded = upgrade_dict(Config, {**old, "gone": 1})  # keys it does not know are left alone
    assert upgraded == {"model": {"channels": 8}, "train": {"steps": 3, "precision": "fp32"}, "gone": 1}
    assert TrainConfig.upgrade({"bf16": True, "precision": "bf16"}) == {"precision": "bf16"}
