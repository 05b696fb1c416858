"""What the models' config dataclasses (``WaveNetConfig``, ``StudentConfig``, ``PitchPredictorConfig``) share:
the dict round trip and the checks of integer sizes, gated convolutions and the mel upsampler."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, fields
from typing import Any, TypeVar

from .errors import WavesynthError

C = TypeVar("C", bound="ModelConfig")


class ModelConfig:
    """Mixin for a model config dataclass: ``to_dict`` / ``from_dict`` (plain values, unknown keys refused)
    and the shared checks, whose messages name ``ClassName.field``."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values (tuples as lists, as JSON and TOML give them back)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any]) -> C:
        """Inverse of ``to_dict``; unknown keys are a ValueError."""
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise WavesynthError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**values)

    def require_ints(self, names: Iterable[str], minimum: int = 1) -> None:
        """Each named field is an int >= ``minimum``."""
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
                raise WavesynthError(f"{type(self).__name__}.{name} must be {what}, got {value!r}")

    def check_gated_convolution(self) -> None:
        """``kernel_size`` >= 2 and an even ``gate_channels`` (tanh and sigmoid halves)."""
        self.require_ints(["kernel_size"], minimum=2)
        if self.gate_channels % 2:
            raise WavesynthError(f"{type(self).__name__}.gate_channels must be even (tanh and sigmoid "
                                 f"halves), got {self.gate_channels}")

    def check_upsampling(self) -> None:
        """``upsample_scales`` are positive ints whose product is ``hop_length``."""
        name, scales = type(self).__name__, self.upsample_scales
        if not scales or any(not isinstance(s, int) or s < 1 for s in scales):
            raise WavesynthError(f"{name}.upsample_scales must be positive integers, got {scales}")
        if math.prod(scales) != self.hop_length:
            raise WavesynthError(f"{name}.upsample_scales {scales} multiply to {math.prod(scales)}, not "
                                 f"hop_length {self.hop_length}")
