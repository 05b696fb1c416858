"""Checkpoint files: atomic writes, safe loads, and a run folder's keep-last-N + best policy.

A checkpoint is a dict of tensors and plain containers (no pickled objects), written to a temporary file in
the same folder, flushed to disk and renamed over the target, so a crash at any moment leaves either the
old file or the new one. Loading uses ``torch.load(weights_only=True)`` and never runs code from the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import MissingFileError, WavesynthError

_STEP_FILE = re.compile(r"step-(\d+)\.pt")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename, fsync of the folder)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint without executing code from it; a plain state_dict (a model folder's model.pt) is
    a one-line ValueError: it is no training checkpoint."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises several types for a damaged or foreign file
        raise WavesynthError(f"cannot read checkpoint {path}: {_load_failure(error)}") from None
    if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WavesynthError(f"{path}: a model folder's weights (a plain state_dict), not a training "
                             "checkpoint (a run's best.pt or step-*.pt)")
    return state


class CheckpointDir:
    """The checkpoints of one run: ``step-XXXXXXXX.pt`` (the newest ``keep_last`` kept) and ``best.pt``."""

    def __init__(self, folder: str | Path, keep_last: int = 3) -> None:
        self.folder = Path(folder)
        self.keep_last = keep_last

    def step_path(self, step: int) -> Path:
        return self.folder / f"step-{step:08d}.pt"

    @property
    def best_path(self) -> Path:
        return self.folder / "best.pt"

    def steps(self) -> list[int]:
        """Steps of the step checkpoints present, oldest first."""
        if not self.folder.is_dir():
            return []
        found = (_STEP_FILE.fullmatch(p.name) for p in self.folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def latest(self) -> Path | None:
        """The newest step checkpoint, or None."""
        steps = self.steps()
        return self.step_path(steps[-1]) if steps else None

    def load_newest(self) -> tuple[Path, dict[str, Any], list[str]]:
        """The newest step checkpoint that can be read, its state, and why each newer one could not be read
        (damaged from outside: disk, copy); a one-line ValueError when none can."""
        errors = []
        for step in reversed(self.steps()):
            path = self.step_path(step)
            try:
                return path, load_checkpoint(path), errors
            except (ValueError, FileNotFoundError) as error:
                errors.append(str(error))
        found = "; ".join(errors) or "it holds none"
        raise WavesynthError(f"no readable checkpoint in {self.folder} ({found}); move the damaged files "
                             "away to start afresh, or choose another train.run_dir")

    def save(self, state: dict[str, Any], best: bool = False) -> Path:
        """Save a step checkpoint (and prune old ones), or ``best.pt`` when ``best``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if best:
            save_checkpoint(state, self.best_path)
            return self.best_path
        path = self.step_path(state["step"])
        save_checkpoint(state, path)
        for step in self.steps()[: -self.keep_last]:
            self.step_path(step).unlink(missing_ok=True)
        return path

    def remove_stale_temporaries(self) -> None:
        """Delete temporary files left by a writer that was killed mid-write."""
        if self.folder.is_dir():
            for path in self.folder.glob(".*.tmp-*"):
                path.unlink(missing_ok=True)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state_dict (names -> tensors) from ``path``, read with ``weights_only=True``; one-line
    errors for a missing, unreadable, foreign or non-finite file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file (the model's weights)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a truncated, corrupt or foreign file
        raise WavesynthError(f"{path}: not a readable weights file, {_load_failure(error)}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WavesynthError(f"{path}: expected a state_dict (names -> tensors)")
    bad = [name for name, value in state.items() if value.is_floating_point() and not value.isfinite().all()]
    if bad:
        raise WavesynthError(f"{path}: non-finite weights in {bad[:3]}")
    return state


def load_fitting_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path,
                       config_file: str) -> None:
    """``model.load_state_dict(state)``, or a one-line ValueError naming the first resized, missing and
    unexpected weights (with the resized one's shapes) when ``state``, read from ``path``, does not fit the
    model built from ``config_file``."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    resized = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    if resized:
        first = resized[0]
        shapes = tuple(state[first].shape), tuple(expected[first].shape)
        problems.append(f"{first} is {shapes[0]} in the file, {shapes[1]} in the model{_more(resized)}")
    if missing:
        problems.append(f"missing {missing[0]}{_more(missing)}")
    if unexpected:
        problems.append(f"unexpected {unexpected[0]}{_more(unexpected)}")
    if problems:
        raise WavesynthError(f"{path}: weights do not fit the model in {config_file}: {'; '.join(problems)}")
    model.load_state_dict(state)


def _more(names: list[str]) -> str:
    return f" (and {len(names) - 1} more)" if len(names) > 1 else ""


def _load_failure(error: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in one line and without torch's advice to retry with
    weights_only=False: a refused pickle is named by the callable it would have run."""
    text = str(error)
    if "Weights only load failed" in text:
        called = re.search(r"GLOBAL ([\w.]+)", text)
        if called:
            return f"refused a pickle that would run {called.group(1)} (loading never runs code from a file)"
        operand = re.search(r"Unsupported operand \d+", text)
        return f"truncated or corrupt? ({operand.group(0) if operand else 'unsupported pickle content'})"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"truncated or corrupt? ({lines[0] if lines else type(error).__name__})"
