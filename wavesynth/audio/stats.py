"""Per-bin corpus statistics of log-mel features, computed in one streaming pass.

Each utterance gives (n, mean, M2) per bin, M2 = Σ (x - mean)²; two summaries merge exactly with Chan et
al.'s formula: n = n_a + n_b, δ = mean_b - mean_a, mean = mean_a + δ·n_b/n,
M2 = M2_a + M2_b + δ²·n_a·n_b/n. The standard deviation is sqrt(M2 / n), floored at ``STD_FLOOR`` so a
bin that never varies (e.g. above a codec's band limit) cannot blow up the normalisation.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import WavesynthError

STD_FLOOR = 1e-2


@dataclass
class MelStats:
    """Count, per-bin mean and M2 (sum of squared deviations) over frames, in float64."""

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, mel: np.ndarray) -> MelStats:
        """Statistics of one ``(n_mels, frames)`` log-mel."""
        mel = np.asarray(mel, dtype=np.float64)
        mean = mel.mean(axis=1)
        return cls(mel.shape[1], mean, ((mel - mean[:, None]) ** 2).sum(axis=1))

    def merge(self, other: MelStats) -> MelStats:
        """The statistics of both sets together (Chan's parallel update)."""
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        return MelStats(n, mean, m2)

    @property
    def std(self) -> np.ndarray:
        return np.maximum(np.sqrt(self.m2 / self.count), STD_FLOOR)

    def normalize(self, mel: np.ndarray) -> np.ndarray:
        """(mel - mean) / std per bin, for ``(n_mels, frames)`` or ``(batch, n_mels, frames)``."""
        return ((mel - self.mean[:, None]) / self.std[:, None]).astype(mel.dtype, copy=False)

    def denormalize(self, mel: np.ndarray) -> np.ndarray:
        return (mel * self.std[:, None] + self.mean[:, None]).astype(mel.dtype, copy=False)

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON (count, mean, m2 and, for reading by eye, std) atomically."""
        data = {
            "count": self.count,
            "mean": self.mean.tolist(),
            "m2": self.m2.tolist(),
            "std": self.std.tolist(),
        }
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MelStats:
        text = Path(path).read_text()
        try:
            data = json.loads(text)
            return cls(
                int(data["count"]), np.asarray(data["mean"], np.float64), np.asarray(data["m2"], np.float64)
            )
        except (ValueError, KeyError, TypeError) as error:
            raise WavesynthError(f"{path}: not a statistics file ({error})") from None


def merge_all(parts: list[MelStats]) -> MelStats:
    """Merge summaries left to right; ValueError if there are none."""
    if not parts:
        raise WavesynthError("no features to compute statistics from")
    total = parts[0]
    for part in parts[1:]:
        total = total.merge(part)
    return total
