"""wavesynth MAF against zuko's MAF of the same size on 2-D data (8 Gaussians), in one process run.

Both flows: features 2, ``--transforms`` affine autoregressive layers, MADEs with two hidden layers of
``--hidden`` units (equal parameter counts, printed), a standard normal base, Adam with the same learning
rate, the same batches in the same order. The two models' training steps alternate, so background load
hits both alike. Prints seconds per training step, seconds to draw 10k samples and to score 10k points,
final test NLL (the true entropy of the data is the floor), and the ratios wavesynth / zuko.

Run: .venv/bin/python benchmarks/bench_maf_vs_zuko.py   (needs `pip install zuko`; ~30 s on 2 cores)
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
import zuko
from timing import interleaved_seconds

from wavesynth import flows
from wavesynth.flows.toy_data import eight_gaussians, eight_gaussians_entropy


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--transforms", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(args.seed)
    train = eight_gaussians(50_000, generator)
    test = eight_gaussians(20_000, generator)
    entropy = eight_gaussians_entropy(generator=generator)
    batches = torch.randint(0, len(train), (args.steps, args.batch), generator=generator)

    torch.manual_seed(args.seed)
    ours = flows.MAF(2, args.hidden, num_layers=args.transforms, num_blocks=2)
    theirs = zuko.flows.MAF(2, 0, transforms=args.transforms, hidden_features=[args.hidden] * 2)
    models = {"wavesynth": ours, "zuko": theirs}
    log_probs = {"wavesynth": ours.log_prob, "zuko": lambda x: theirs().log_prob(x)}
    samplers = {"wavesynth": ours.sample, "zuko": lambda n: theirs().sample((n,))}

    step_time = {name: [] for name in models}
    optimisers = {name: torch.optim.Adam(model.parameters(), lr=args.lr) for name, model in models.items()}
    for step in range(args.steps):
        batch = train[batches[step]]
        for name, log_prob in log_probs.items():
            start = time.perf_counter()
            loss = -log_prob(batch).mean()
            optimisers[name].zero_grad(set_to_none=True)
            loss.backward()
            optimisers[name].step()
            step_time[name].append(time.perf_counter() - start)

    for model in models.values():
        model.eval()
    with torch.no_grad():
        sampling = interleaved_seconds({name: partial(f, args.samples) for name, f in samplers.items()}, 21)
        points = test[: args.samples]
        scoring = interleaved_seconds({name: partial(f, points) for name, f in log_probs.items()}, 21)
        results = {
            name: {
                "parameters": count(model),
                "train step (ms)": 1e3 * statistics.median(step_time[name]),
                f"sample {args.samples} (ms)": 1e3 * sampling[name],
                f"log_prob {args.samples} (ms)": 1e3 * scoring[name],
                "test NLL (nats)": -log_probs[name](test).mean().item(),
            }
            for name, model in models.items()
        }

    print(
        f"8 Gaussians, features 2, {args.transforms} transforms, hidden [{args.hidden}, {args.hidden}], "
        f"Adam lr {args.lr}, batch {args.batch}, {args.steps} steps, torch {torch.__version__}, "
        f"zuko {zuko.__version__}, {torch.get_num_threads()} threads; true entropy {entropy:.3f} nats"
    )
    print(f"{'':24}{'wavesynth':>12}{'zuko':>12}{'ratio':>10}")
    for key in results["wavesynth"]:
        a, b = results["wavesynth"][key], results["zuko"][key]
        print(f"{key:24}{a:12.4g}{b:12.4g}{a / b:10.3f}")


if __name__ == "__main__":
    main()
