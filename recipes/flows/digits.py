"""NICE, RealNVP and Glow on sklearn's 8x8 digits, in test bits/dim against a full-covariance Gaussian.

    python recipes/flows/digits.py [--quick] [--out runs/flows/digits]

Data: the 1797 digits of ``sklearn.datasets.load_digits`` (17 grey levels k ∈ {0..16}), split 80/20 with
``train_test_split(random_state=0)``; 10% of the training part is held out for early stopping. Every
batch is dequantised afresh, x = (k + u)/17 with u ~ U[0, 1)^64, and
bits/dim = −(log p(x) − 64 log 17) / (64 ln 2), averaged over several dequantisations of the test set.
Models: a full-covariance Gaussian fitted in closed form, NICE, RealNVP, Glow, and the Glow ablation
(additive instead of affine coupling; reversal instead of the invertible 1x1 convolution).

Figures: samples at temperatures 1.0 / 0.7 / 0.5, a Glow latent interpolation between test digits,
NICE inpainting (known pixels clamped, projected gradient ascent on log p over the masked ones) and the
validation curves. Writes metrics.json and results.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import matplotlib.pyplot as plt
import torch
from common import (
    Stopwatch,
    count_parameters,
    fit,
    markdown_table,
    parse_args,
    plot_validation_curves,
    save_figure,
    write_results,
)
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn

from wavesynth import flows

LEVELS = 17
SIDE = 8
DIMS = SIDE * SIDE
TEMPERATURES = (1.0, 0.7, 0.5)
LOGIT_ALPHA = 0.05


@dataclass
class Config:
    steps: int = 2500
    batch_size: int = 64
    lr: float = 1e-3
    validate_every: int = 250
    test_dequantisations: int = 10
    nice_hidden: int = 256
    realnvp_hidden: int = 16
    realnvp_blocks: int = 1
    glow_hidden: int = 32
    glow_depth: int = 4
    inpaint_steps: int = 500


QUICK = Config(
    steps=20, validate_every=10, test_dequantisations=2, nice_hidden=32, glow_depth=1, inpaint_steps=10
)


class DigitsFlow(nn.Module):
    """A flow over dequantised digits x ∈ [0, 1)^(1×8×8): y = logit(α + (1 − 2α)x) first, then the model.

    Every model sees the same logit pre-processing (RealNVP's, α = 0.05; RealNVP has it built in).
    ``vector`` flattens the images to 64 features (NICE).
    """

    def __init__(self, flow: flows.Flow, vector: bool = False):
        super().__init__()
        self.flow = flow
        self.vector = vector

    def _input(self, x: Tensor) -> Tensor:
        return x.flatten(1) if self.vector else x

    def to_latent(self, x: Tensor) -> Tensor:
        """z = f(x)."""
        return self.flow.transform_to_noise(self._input(x))[0]

    def from_latent(self, z: Tensor) -> Tensor:
        """x = f⁻¹(z)."""
        return self.flow.transform.inverse(z)[0].view(-1, 1, SIDE, SIDE)

    def log_prob(self, x: Tensor) -> Tensor:
        return self.flow.log_prob(self._input(x))

    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        return self.flow.sample(n, temperature=temperature).view(n, 1, SIDE, SIDE)


def with_logit(flow: flows.Flow, *first: flows.Transform) -> flows.Flow:
    """The same flow behind Logit(LOGIT_ALPHA) (and any ``first`` layers after it)."""
    return flows.Flow(flow.base, [flows.Logit(LOGIT_ALPHA), *first, flow.transform])


def build_models(config: Config) -> dict[str, DigitsFlow]:
    """NICE gets an actnorm after the logit: its only other scaling is the last layer, and the per-pixel
    spreads differ by orders of magnitude (the border is almost always blank)."""

    def glow(**ablation: str) -> DigitsFlow:
        model = flows.Glow(
            1,
            levels=2,
            depth=config.glow_depth,
            hidden_channels=config.glow_hidden,
            image_size=SIDE,
            **ablation,
        )
        return DigitsFlow(with_logit(model))

    nice = flows.NICE(DIMS, config.nice_hidden, num_blocks=4, num_layers=4)
    realnvp = flows.RealNVP(
        (1, SIDE, SIDE), config.realnvp_hidden, config.realnvp_blocks, num_scales=2, logit_alpha=LOGIT_ALPHA
    )
    return {
        "NICE": DigitsFlow(with_logit(nice, flows.ActNorm(DIMS)), vector=True),
        "RealNVP": DigitsFlow(realnvp),
        "Glow": glow(),
        "Glow, additive coupling": glow(coupling="additive"),
        "Glow, reverse permutation": glow(permutation="reverse"),
    }


def load_levels(seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Integer images (n, 1, 8, 8): train, validation (10% of train), test (the fixed 20%)."""
    images = torch.as_tensor(load_digits().images, dtype=torch.long).unsqueeze(1)
    train, test = train_test_split(images, test_size=0.2, random_state=0)
    train, validation = train_test_split(train, test_size=0.1, random_state=seed)
    return train, validation, test


def bits_per_dim(log_prob: Callable[[Tensor], Tensor], levels: Tensor, draws: int, seed: int) -> float:
    """Mean bits/dim over ``draws`` dequantisations of ``levels`` (a fixed generator: same noise for all)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        scores = [log_prob(flows.dequantize(levels, LEVELS, generator)) for _ in range(draws)]
    return flows.bits_per_dim(torch.cat(scores), DIMS, LEVELS).mean().item()


def dequantised_nll(model: DigitsFlow, generator: torch.Generator) -> Callable[[Tensor], Tensor]:
    """The training loss: −log p(x)/64 in nats per pixel, x a fresh dequantisation of the batch."""
    return lambda levels: -model.log_prob(flows.dequantize(levels, LEVELS, generator)).mean() / DIMS


def gaussian_baseline(train: Tensor, draws: int, seed: int) -> Callable[[Tensor], Tensor]:
    """log N(x; m, S) with m, S the mean and covariance of ``draws`` dequantisations of the train set."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.cat([flows.dequantize(train, LEVELS, generator) for _ in range(draws)]).flatten(1).double()
    gaussian = torch.distributions.MultivariateNormal(x.mean(0), torch.cov(x.T))
    return lambda images: gaussian.log_prob(images.flatten(1).double()).float()


def image_grid(images: Tensor, rows: int) -> Tensor:
    """(rows·cols, 1, 8, 8) -> one (rows·9 − 1, cols·9 − 1) picture with 1-pixel white gaps."""
    cols = images.shape[0] // rows
    padded = nn.functional.pad(images.clamp(0, 1)[:, 0], (0, 1, 0, 1), value=0.0)
    grid = padded.view(rows, cols, SIDE + 1, SIDE + 1).permute(0, 2, 1, 3).reshape(rows * (SIDE + 1), -1)
    return grid[:-1, :-1]


def show(ax: plt.Axes, picture: Tensor, title: str) -> None:
    ax.imshow(picture.numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_samples(models: dict[str, DigitsFlow], path) -> None:
    fig, axes = plt.subplots(
        len(models), len(TEMPERATURES), figsize=(2.4 * len(TEMPERATURES), 2.5 * len(models))
    )
    for row, (name, model) in enumerate(models.items()):
        for col, temperature in enumerate(TEMPERATURES):
            with torch.no_grad():
                samples = model.sample(36, temperature)
            show(axes[row, col], image_grid(samples, 6), f"{name}, T = {temperature}")
    save_figure(fig, path)


def plot_interpolation(model: DigitsFlow, test: Tensor, path, pairs: int = 4, steps: int = 9) -> None:
    """x(α) = f⁻¹((1 − α) f(x_a) + α f(x_b)) for pairs of test digits taken at bin centres."""
    x = (test[: 2 * pairs].float() + 0.5) / LEVELS
    with torch.no_grad():
        z = model.to_latent(x)
        alphas = torch.linspace(0, 1, steps).view(1, -1, 1, 1, 1)
        path_z = (1 - alphas) * z[0::2, None] + alphas * z[1::2, None]
        images = model.from_latent(path_z.flatten(0, 1))
    fig, ax = plt.subplots(figsize=(steps * 0.75, pairs * 0.9))
    show(ax, image_grid(images, pairs), "Glow: latent interpolation between test digits (α = 0 … 1)")
    save_figure(fig, path)


def inpaint(model: DigitsFlow, x: Tensor, known: Tensor, steps: int, lr: float = 0.02) -> Tensor:
    """argmax over the unknown pixels of log p(x), by projected gradient ascent from mid-grey.

    Each step: an Adam step on −log p over the unknown pixels only, then projection onto [0, 1].
    """
    free = torch.full_like(x, 0.5, requires_grad=True)
    optimiser = torch.optim.Adam([free], lr=lr)
    for _ in range(steps):
        loss = -model.log_prob(torch.where(known, x, free)).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            free.clamp_(0, 1)
    return torch.where(known, x, free.detach())


def plot_inpainting(model: DigitsFlow, test: Tensor, mean_image: Tensor, steps: int, path) -> dict:
    """Bottom half of 10 test digits hidden and inpainted; RMSE in grey levels vs the mean-image fill."""
    x = (test[:10].float() + 0.5) / LEVELS
    known = torch.ones_like(x, dtype=torch.bool)
    known[:, :, SIDE // 2 :] = False
    filled = inpaint(model, x, known, steps)
    masked = torch.where(known, x, 0.5)

    def rmse(estimate: Tensor) -> float:
        return (LEVELS * (estimate - x)[~known.expand_as(x)]).square().mean().sqrt().item()

    fig, axes = plt.subplots(3, 1, figsize=(8, 3.6))
    show(axes[0], image_grid(x, 1), "original (test digits)")
    show(axes[1], image_grid(masked, 1), "masked: bottom half unknown (grey)")
    show(axes[2], image_grid(filled, 1), "NICE inpainting: projected gradient ascent on log p")
    save_figure(fig, path)
    mean_fill = torch.where(known, x, mean_image.expand_as(x))
    return {"rmse_levels_nice": rmse(filled), "rmse_levels_mean_image": rmse(mean_fill)}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], "digits")
    config = QUICK if args.quick else Config()
    total = Stopwatch()
    train, validation, test = load_levels(args.seed)
    print(f"digits: {len(train)} train, {len(validation)} validation, {len(test)} test images")
    draws = config.test_dequantisations
    results = {
        "Gaussian (full covariance)": {
            "test_bpd": bits_per_dim(gaussian_baseline(train, 10, args.seed), test, draws, args.seed)
        }
    }
    print(f"Gaussian baseline: test {results['Gaussian (full covariance)']['test_bpd']:.4f} bits/dim")

    models = build_models(config)
    histories = {}
    for name, model in models.items():
        torch.manual_seed(args.seed)
        clock = Stopwatch()
        histories[name] = fit(
            model,
            dequantised_nll(model, torch.Generator().manual_seed(args.seed)),
            train,
            config.steps,
            config.batch_size,
            config.lr,
            torch.Generator().manual_seed(args.seed),
            validate=lambda m=model: bits_per_dim(m.log_prob, validation, 2, args.seed),
            validate_every=config.validate_every,
        )
        results[name] = {
            "test_bpd": bits_per_dim(model.log_prob, test, draws, args.seed),
            "train_bpd": bits_per_dim(model.log_prob, train, 1, args.seed),
            "best_step": histories[name]["validation_step"][
                min(range(len(histories[name]["validation"])), key=histories[name]["validation"].__getitem__)
            ],
            "parameters": count_parameters(model),
            "seconds": clock(),
        }
        r = results[name]
        print(f"{name:26} test {r['test_bpd']:.4f} bits/dim, train {r['train_bpd']:.4f}, {clock():.0f} s")

    torch.manual_seed(args.seed)
    plot_samples({name: models[name] for name in ("NICE", "RealNVP", "Glow")}, args.out / "samples.png")
    plot_interpolation(models["Glow"], test, args.out / "interpolation.png")
    mean_image = (train.float().mean(0) + 0.5) / LEVELS
    inpainting = plot_inpainting(
        models["NICE"], test, mean_image, config.inpaint_steps, args.out / "inpainting.png"
    )
    plot_validation_curves(histories, args.out / "curves.png", "validation bits/dim",
                           "8x8 digits: validation bits/dim while training")

    bpd = {name: r["test_bpd"] for name, r in results.items()}
    baseline = bpd["Gaussian (full covariance)"]
    findings = {
        "every_flow_beats_gaussian": all(v < baseline for n, v in bpd.items() if n in models),
        "glow_beats_realnvp": bpd["Glow"] < bpd["RealNVP"],
        "affine_beats_additive_coupling": bpd["Glow"] < bpd["Glow, additive coupling"],
        "conv1x1_beats_reverse_permutation": bpd["Glow"] < bpd["Glow, reverse permutation"],
    }
    for key, value in findings.items():
        print(f"{key}: {value}")
    report = markdown_table(
        ["model", "test bits/dim", "train bits/dim", "parameters", "seconds"],
        [
            [n, r["test_bpd"], r.get("train_bpd", ""), r.get("parameters", ""), r.get("seconds", "")]
            for n, r in results.items()
        ],
    )
    write_results(
        args.out,
        report,
        {
            "config": asdict(config),
            "seed": args.seed,
            "threads": torch.get_num_threads(),
            "split": {"train": len(train), "validation": len(validation), "test": len(test)},
            "results": results,
            "findings": findings,
            "inpainting": inpainting,
            "seconds": total(),
        },
    )
    print(f"total {total():.0f} s")


if __name__ == "__main__":
    main()
