"""What the flow recipes share: command line, training loop, metrics file, figure saving, tables."""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402


def parse_args(description: str, name: str) -> argparse.Namespace:
    """Options ``--quick`` (a smoke run), ``--out`` (default runs/flows/<name>), ``--seed``, ``--threads``.

    Seeds torch's global generator with ``--seed`` (model initialisation), sets the threads, makes ``--out``.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a few steps of everything (for tests)")
    parser.add_argument("--out", type=Path, default=Path("runs/flows") / name, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def fit(
    model: nn.Module,
    loss_fn: Callable[[Tensor], Tensor],
    data: Tensor,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    validate: Callable[[], float] | None = None,
    validate_every: int = 0,
) -> dict[str, list[float]]:
    """Adam, learning rate decayed as lr·½(1 + cos(π·step/steps)), on minibatches drawn with replacement.

    Gradients are clipped to norm 10. With ``validate`` (a loss, lower is better, computed without
    gradients in eval mode every ``validate_every`` steps) the parameters with the best validation loss
    are restored at the end: early stopping. Returns the training loss of every step and the validation
    losses with their steps; the model ends in eval mode.
    """
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)

    def cosine(step: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * step / steps))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, cosine)
    history: dict[str, list[float]] = {"loss": [], "validation": [], "validation_step": []}
    best, best_state = math.inf, None
    for step in range(1, steps + 1):
        batch = data[torch.randint(len(data), (batch_size,), generator=generator)]
        loss = loss_fn(batch)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimiser.step()
        schedule.step()
        history["loss"].append(loss.item())
        if validate is not None and (step % validate_every == 0 or step == steps):
            model.eval()
            with torch.no_grad():
                value = validate()
            model.train()
            history["validation"].append(value)
            history["validation_step"].append(step)
            if value < best:
                best, best_state = value, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


class Stopwatch:
    """Seconds since construction, for the wall times the recipes report."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def write_results(out: Path, report: str, metrics: dict) -> None:
    """results.md (the markdown report, also printed) and metrics.json in the output folder."""
    (out / "results.md").write_text(report + "\n")
    print(report)
    path = out / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {path}")


def save_figure(fig: plt.Figure, path: Path, dpi: int = 72) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    print(f"wrote {path}")


def plot_validation_curves(histories: dict[str, dict], path: Path, ylabel: str, title: str,
                           sign: float = 1.0) -> None:
    """Each model's validation curve (``history["validation"]`` times ``sign`` against its step)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, history in histories.items():
        ax.plot(history["validation_step"], [sign * v for v in history["validation"]], label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def markdown_table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    """A markdown table; floats printed with 3 decimals."""
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"{c:.3f}" if isinstance(c, float) else str(c) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
