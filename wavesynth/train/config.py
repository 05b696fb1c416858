"""Configs: plain dataclasses, loaded from TOML files with ``key=value`` overrides and strict validation.

A config is a dataclass whose fields are ``bool``, ``int``, ``float``, ``str``, ``Literal[...]``,
``X | None``, ``list[X]``, ``tuple[X, ...]``/``tuple[X, Y]``, ``dict[str, X]`` (``X`` may be ``Any``) or
another config dataclass (a TOML table).
Value checks beyond types go in ``__post_init__`` as ``ValueError("name must be ..., got ...")``; errors
are reported with the full dotted key, e.g. ``train.lr must be a finite number > 0, got -1.0``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from ..errors import WavesynthError
from .precision import PRECISION_CHOICES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

C = TypeVar("C")


@dataclass
class TrainConfig:
    """Settings of the training loop, shared by every model (the ``[train]`` table of a config file).

    ``precision``: "fp32", "bf16" (autocast on CPU or CUDA; weights, gradients and optimiser states stay
    float32) or "auto" (the default: bf16 where the device has native bf16, see
    ``wavesynth.train.precision.native_bf16``, else fp32). "auto" is the default because it is what the
    old default ``bf16 = true`` did in practice (bf16 on a recent GPU, fp32 on a CPU without bf16
    hardware), and takes the bf16 speed-up wherever it exists. The trainer logs the resolved precision.

    Older configs and checkpoints have ``bf16 = true|false`` instead (it was only ever used on CUDA); it
    still loads, as ``bf16 = true`` -> "auto" and ``bf16 = false`` -> "fp32", so resuming an old CPU run
    never switches a CPU without native bf16 to (emulated, much slower) bf16. When both keys are given,
    ``precision`` wins.
    """

    run_dir: str = "runs/default"  # checkpoints, config.toml, metrics.csv and TensorBoard events
    steps: int = 10_000  # optimiser steps in the whole run
    batch_size: int = 16  # global batch per optimiser step, over all processes and accumulation
    grad_accum: int = 1  # micro-batches accumulated per step on each process
    optimizer: Literal["adam", "adamw"] = "adamw"
    lr: float = 3e-4  # peak learning rate
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0  # applied to weights with 2+ dimensions only
    schedule: Literal["constant", "linear", "cosine"] = "cosine"  # decay after warm-up
    warmup_steps: int = 0  # linear warm-up from 0 to lr
    min_lr: float = 0.0  # where linear and cosine decay end
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    ema_decay: float = 0.999  # EMA of weights, used for validation and export
    max_nonfinite: int = 10  # stop after this many consecutive non-finite steps
    val_every: int = 1000
    val_batch_size: int = 0  # per process; 0 means the training micro-batch size
    save_every: int = 1000
    keep_last: int = 3  # step checkpoints kept besides best.pt
    log_every: int = 50
    seed: int = 0
    num_workers: int = 0  # DataLoader worker processes
    device: str = "auto"  # "auto" (cuda:LOCAL_RANK if available, else cpu), "cpu", "cuda", ...
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # bf16 autocast, or auto: bf16 on native hardware
    progress: bool = True  # tqdm progress bar

    #: Keys of older configs that ``upgrade`` still reads, with their types.
    legacy_keys: ClassVar[dict[str, type]] = {"bf16": bool}

    @classmethod
    def upgrade(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """A ``[train]`` table with the old ``bf16`` key mapped to ``precision`` (true -> "auto", false ->
        "fp32"); an explicit ``precision`` wins over it."""
        data = dict(data)
        if "bf16" in data:
            old = data.pop("bf16")
            if not isinstance(old, bool):
                raise WavesynthError(f"bf16 must be true or false, got {old!r}")
            data.setdefault("precision", "auto" if old else "fp32")
        return data

    def __post_init__(self) -> None:
        _require(self.precision in PRECISION_CHOICES, "precision",
                 f"must be one of {', '.join(PRECISION_CHOICES)}", self.precision)
        for name in ("steps", "batch_size", "grad_accum", "val_every", "save_every", "log_every",
                     "max_nonfinite", "keep_last"):
            _require(getattr(self, name) >= 1, name, "must be >= 1", getattr(self, name))
        for name in ("warmup_steps", "val_batch_size", "num_workers"):
            _require(getattr(self, name) >= 0, name, "must be >= 0", getattr(self, name))
        # comparisons are written so that nan fails them; inf is refused where it would pass
        _require(0 < self.lr < math.inf, "lr", "must be a finite number > 0", self.lr)
        _require(0 <= self.min_lr <= self.lr, "min_lr", "must be between 0 and lr", self.min_lr)
        _require(all(0 <= b < 1 for b in self.betas), "betas", "must lie in [0, 1)", self.betas)
        _require(0 < self.eps < math.inf, "eps", "must be a finite number > 0", self.eps)
        _require(0 <= self.weight_decay < math.inf, "weight_decay", "must be a finite number >= 0",
                 self.weight_decay)
        _require(self.grad_clip >= 0, "grad_clip", "must be >= 0 (0 disables clipping)", self.grad_clip)
        _require(self.grad_clip < math.inf, "grad_clip", "must be finite (0 disables clipping)",
                 self.grad_clip)
        _require(0 <= self.ema_decay < 1, "ema_decay", "must lie in [0, 1)", self.ema_decay)
        _require(self.warmup_steps <= self.steps, "warmup_steps", "must be <= steps", self.warmup_steps)
        _require(self.run_dir != "", "run_dir", "must not be empty", self.run_dir)


def _require(ok: bool, name: str, what: str, value: Any) -> None:
    if not ok:
        raise WavesynthError(f"{name} {what}, got {value!r}")


def from_dict(cls: type[C], data: Mapping[str, Any], prefix: str = "") -> C:
    """Build config dataclass ``cls`` from a (nested) mapping, checking every key, type and value."""
    if not isinstance(data, Mapping):
        raise WavesynthError(f"{prefix.rstrip('.') or 'config'} must be a table, got {data!r}")
    data = _upgrade(cls, data, prefix)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            where = f"[{prefix.rstrip('.')}]" if prefix else "the config"
            raise WavesynthError(f"unknown key '{prefix}{key}' in {where}; valid keys: {', '.join(fields)}")
        default = fields[key].default_factory
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, Mapping) and callable(default):
            # a partial table keeps the defaults the parent gives it (old keys mapped first, so that a
            # default of the new key does not hide them)
            value = _merge(dataclasses.asdict(default()), _upgrade(hints[key], value, f"{prefix}{key}."))
        kwargs[key] = _convert(value, hints[key], prefix + key)
    try:
        return cls(**kwargs)
    except ValueError as error:
        raise WavesynthError(f"{prefix}{error}") from None


def _upgrade(cls: type, data: Mapping[str, Any], prefix: str) -> Mapping[str, Any]:
    """``data`` with the old keys of config class ``cls`` mapped to new ones (its ``upgrade`` classmethod,
    if it has one)."""
    upgrade = getattr(cls, "upgrade", None)
    if upgrade is None:
        return data
    try:
        return upgrade(data)
    except ValueError as error:
        raise WavesynthError(f"{prefix}{error}") from None


def upgrade_dict(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """A saved config dict (e.g. a checkpoint's) with every table's old keys mapped to new ones, and
    nothing else checked or changed: for comparing an old config with a new one."""
    out = dict(_upgrade(cls, data, ""))
    hints = typing.get_type_hints(cls)
    for key, value in out.items():
        if isinstance(value, Mapping) and dataclasses.is_dataclass(hints.get(key)):
            out[key] = upgrade_dict(hints[key], value)
    return out


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` laid over it, table by table."""
    merged = dict(base)
    for key, value in update.items():
        nested = isinstance(value, Mapping) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if nested else value
    return merged


def to_dict(config: Any) -> dict[str, Any]:
    """The config as nested dicts of plain values (tuples become lists), for TOML files and checkpoints."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def load_config(cls: type[C], path: str | Path | None = None, overrides: Sequence[str] = ()) -> C:
    """Load ``cls`` from a TOML file (or its defaults when ``path`` is None), then apply ``key=value``
    overrides such as ``train.lr=1e-3`` or ``model.channels=64``."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as file:
                data = tomllib.load(file)
        except tomllib.TOMLDecodeError as error:
            raise WavesynthError(f"{path} is not valid TOML: {error}") from None
        except UnicodeDecodeError as error:
            raise WavesynthError(f"{path} is not UTF-8 text (byte {error.start}: {error.reason}); save it as "
                                 "UTF-8") from None
    for item in overrides:
        key, value, owner = _parse_override(cls, item)
        *tables, name = key.split(".")
        target = data
        for table in tables:
            target = target.setdefault(table, {})
        if name in getattr(owner, "legacy_keys", {}):  # an old key, mapped now so that it overrides the file
            table = f"{'.'.join(tables)}." if tables else ""
            target.update(_upgrade(owner, {name: value}, table))
            target.pop(name, None)
            continue
        target[name] = value
    return from_dict(cls, data)


def _parse_override(cls: type, item: str) -> tuple[str, Any, type]:
    """Split ``key=value`` and parse the value as a TOML value (strings may be left unquoted); also returns
    the config class whose field the key names."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise WavesynthError(f"override '{item}' must look like key=value, e.g. train.lr=1e-3")
    target: Any = cls
    owner: type = cls
    parts = key.split(".")
    for depth, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(target)]
        if depth == len(parts) - 1 and part in getattr(target, "legacy_keys", {}):
            owner, target = target, target.legacy_keys[part]
            break
        if part not in names:
            where = ".".join(parts[:depth])
            where = f"[{where}]" if where else "the config"
            raise WavesynthError(f"unknown key '{key}' in {where}; valid keys: {', '.join(names)}")
        owner, target = target, typing.get_type_hints(target)[part]
        if depth < len(parts) - 1 and not dataclasses.is_dataclass(target):
            raise WavesynthError(f"'{'.'.join(parts[:depth + 1])}' is not a table, so '{key}' cannot be set")
    if dataclasses.is_dataclass(target):
        raise WavesynthError(f"'{key}' is a table; set one of its keys, e.g. {key}.<name>=value")
    try:
        return key, tomllib.loads(f"v = {text.strip()}")["v"], owner
    except tomllib.TOMLDecodeError:
        return key, text.strip(), owner  # a bare string such as run_dir=runs/x


def _convert(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against type ``hint``; return it in that type (lists become tuples, ints floats)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, key)
            except ValueError as error:
                errors.append(str(error))
        raise WavesynthError(errors[0] if len(errors) == 1 else f"{key} has the wrong type, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise WavesynthError(f"{key} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, Mapping):
            raise WavesynthError(f"{key} must be a table, got {value!r}")
        if args[1] is Any:
            return dict(value)
        return {k: _convert(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise WavesynthError(f"{key} must be a list, got {value!r}")
        if origin is list:
            return [_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise WavesynthError(f"{key} must be a list of {len(args)} values, got {value!r}")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (bool, int, str):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
        raise WavesynthError(f"{key} must be {_NAMES[hint]}, got {value!r}")
    if hint is float:
        raise WavesynthError(f"{key} must be a number, got {value!r}")
    raise TypeError(f"config field {key} has unsupported type {hint!r}")


_NAMES = {bool: "true or false", int: "an integer", str: "a string"}


def dump_toml(data: Mapping[str, Any]) -> str:
    """Write nested dicts of plain values as TOML (``None`` values are left out: they mean 'default')."""
    lines: list[str] = []
    _dump_table(data, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _dump_table(data: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    if path:
        lines += ["", f"[{'.'.join(path)}]"]
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    for key, value in data.items():
        if value is not None and key not in tables:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in tables.items():
        _dump_table(value, [*path, key], lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def save_config(config: Any, path: str | Path) -> None:
    """Write ``config`` to a TOML file that :func:`load_config` reads back to an equal config."""
    Path(path).write_text(dump_toml(to_dict(config)))


__all__ = ["TrainConfig", "dump_toml", "from_dict", "load_config", "save_config", "to_dict", "upgrade_dict"]
