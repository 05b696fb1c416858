"""Flows on 2-D toy densities: MAF, RealNVP, Glow-style, NICE and zuko's MAF, test NLL in nats.

    python recipes/flows/toy2d.py [--quick] [--out runs/flows/toy2d]

Every model gets the same data (50k train, 20k test points), batches, step budget and optimiser. For
8 Gaussians the true entropy H = −E[log p(x)] is estimated by Monte Carlo from the exact density: no
model can have a test NLL below it (up to sampling noise). Writes metrics.json, results.md and one figure
per density (data, then each model's learned density and samples).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import matplotlib.pyplot as plt
import torch
import zuko
from common import Stopwatch, count_parameters, fit, markdown_table, parse_args, save_figure, write_results
from torch import Tensor, nn

from wavesynth import flows
from wavesynth.flows.toy_data import TOY_DENSITIES, eight_gaussians_entropy, sample_toy2d


@dataclass
class Config:
    train_points: int = 50_000
    test_points: int = 20_000
    steps: int = 2000
    batch_size: int = 512
    lr: float = 2e-3
    hidden: int = 64
    entropy_samples: int = 1_000_000
    plot_samples: int = 5000
    grid: int = 200  # density plots: grid × grid points over [-LIMIT, LIMIT]²


QUICK = Config(train_points=2000, test_points=1000, steps=30, batch_size=128, entropy_samples=10_000, grid=40)
LIMIT = 4.5
PEER = "zuko MAF"  # not a candidate for the best-model check


class ZukoFlow(nn.Module):
    """zuko's (unconditional) MAF with this library's ``log_prob`` / ``sample`` calls."""

    def __init__(self, flow: zuko.flows.Flow):
        super().__init__()
        self.flow = flow

    def log_prob(self, x: Tensor) -> Tensor:
        return self.flow().log_prob(x)

    def sample(self, n: int) -> Tensor:
        return self.flow().sample((n,))


def glow_style(features: int, hidden: int, steps: int) -> flows.Flow:
    """Glow's step for vectors: [ActNorm, LU-linear, affine coupling (sigmoid scale)] × steps."""
    layers: list[flows.Transform] = []
    for _ in range(steps):
        conditioner = flows.MLP(features, 2 * features, hidden, num_blocks=2)
        coupling = flows.AffineCoupling(flows.coupling_mask(features, "half"), conditioner, scale="sigmoid")
        layers += [flows.ActNorm(features), flows.LULinear(features), coupling]
    return flows.Flow(flows.StandardNormal(features), layers)


def build_models(hidden: int) -> dict[str, nn.Module]:
    """Five 2-D flows of similar size (parameter counts go to the metrics)."""
    return {
        "MAF": flows.MAF(2, hidden, num_layers=5),
        "RealNVP": flows.RealNVP(2, hidden, num_blocks=2, num_layers=8, batch_norm=False),
        "Glow-style": glow_style(2, hidden, steps=6),
        "NICE": flows.NICE(2, hidden, num_blocks=2, num_layers=6),
        PEER: ZukoFlow(zuko.flows.MAF(2, 0, transforms=5, hidden_features=[hidden] * 2)),
    }


def density_grid(model: nn.Module, size: int) -> Tensor:
    """exp(log p) on a size × size grid over [-LIMIT, LIMIT]², rows = y (for imshow)."""
    axis = torch.linspace(-LIMIT, LIMIT, size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    with torch.no_grad():
        return model.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().view(size, size)


def plot_density(name: str, data: Tensor, results: dict[str, dict], config: Config, path) -> None:
    """Top row: training data and each model's density; bottom row: each model's samples."""
    columns = 1 + len(results)
    fig, axes = plt.subplots(2, columns, figsize=(2.4 * columns, 5.0), squeeze=False)
    extent = (-LIMIT, LIMIT, -LIMIT, LIMIT)
    axes[0, 0].hist2d(data[:, 0].numpy(), data[:, 1].numpy(), bins=100, range=[[-LIMIT, LIMIT]] * 2)
    axes[0, 0].set_title(f"{name}: training data")
    axes[1, 0].axis("off")
    for column, (model_name, result) in enumerate(results.items(), start=1):
        top, bottom = axes[0, column], axes[1, column]
        top.imshow(result["density"].numpy(), origin="lower", extent=extent, cmap="viridis")
        top.set_title(f"{model_name} density\ntest NLL {result['test_nll']:.3f}")
        samples = result["samples"]
        bottom.scatter(samples[:, 0].numpy(), samples[:, 1].numpy(), s=0.5, alpha=0.4)
        bottom.set_xlim(-LIMIT, LIMIT)
        bottom.set_ylim(-LIMIT, LIMIT)
        bottom.set_aspect("equal")
        bottom.set_title(f"{model_name} samples")
    for ax in axes.flat:
        ax.tick_params(labelsize=6)
        ax.set_xlabel("x₁", fontsize=7, labelpad=1)
        ax.set_ylabel("x₂", fontsize=7, labelpad=1)
    save_figure(fig, path)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], "toy2d")
    config = QUICK if args.quick else Config()
    total = Stopwatch()
    metrics: dict = {"config": asdict(config), "seed": args.seed, "threads": torch.get_num_threads()}
    generator = torch.Generator().manual_seed(args.seed)
    entropy = eight_gaussians_entropy(config.entropy_samples, generator)
    metrics["eight_gaussians_entropy_nats"] = entropy
    print(f"8 Gaussians: true entropy (Monte Carlo, {config.entropy_samples} points) {entropy:.4f} nats")

    table: dict[str, dict[str, float]] = {}
    details: dict[str, dict[str, dict]] = {}
    for density in TOY_DENSITIES:
        train = sample_toy2d(density, config.train_points, generator)
        test = sample_toy2d(density, config.test_points, generator)
        results: dict[str, dict] = {}
        torch.manual_seed(args.seed)
        for model_name, model in build_models(config.hidden).items():
            torch.manual_seed(args.seed)
            clock = Stopwatch()
            history = fit(
                model,
                lambda x, m=model: -m.log_prob(x).mean(),
                train,
                config.steps,
                config.batch_size,
                config.lr,
                torch.Generator().manual_seed(args.seed),
            )
            with torch.no_grad():
                nll = -model.log_prob(test).mean().item()
                samples = model.sample(config.plot_samples)
            results[model_name] = {
                "test_nll": nll,
                "final_train_loss": history["loss"][-1],
                "parameters": count_parameters(model),
                "seconds": clock(),
                "density": density_grid(model, config.grid),
                "samples": samples,
            }
            print(f"{density:16} {model_name:11} test NLL {nll:.4f} nats ({clock():.1f} s)")
        plot_density(density, train, results, config, args.out / f"{density}.png")
        table[density] = {name: r["test_nll"] for name, r in results.items()}
        scalars = ("test_nll", "final_train_loss", "parameters", "seconds")
        details[density] = {name: {k: r[k] for k in scalars} for name, r in results.items()}

    ours = {name: nll for name, nll in table["eight_gaussians"].items() if name != PEER}
    best_name = min(ours, key=ours.get)
    gap = table["eight_gaussians"][best_name] - entropy
    print(
        f"8 Gaussians: best {best_name} NLL {table['eight_gaussians'][best_name]:.4f}, true entropy "
        f"{entropy:.4f}, gap {gap:.4f} nats (target < 0.12)"
    )
    metrics.update(
        test_nll_nats=table,
        details=details,
        eight_gaussians_best={"model": best_name, "gap_nats": gap, "within_0.12": gap < 0.12},
        seconds=total(),
    )
    models = list(next(iter(table.values())))
    rows = [[density, *(table[density][m] for m in models)] for density in table]
    rows.append(["8 Gaussians true entropy", entropy, *([""] * (len(models) - 1))])
    report = markdown_table(["density (test NLL, nats)", *models], rows)
    write_results(args.out, report, metrics)
    print(f"total {total():.0f} s")


if __name__ == "__main__":
    main()
