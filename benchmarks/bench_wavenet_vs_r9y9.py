"""wavesynth's WaveNet teacher against r9y9's wavenet_vocoder 0.1.1 of the same size, in one process run.

Peer: ``WaveNet(out_channels=30, layers=24, stacks=4, residual_channels=64, gate_channels=128,
skip_out_channels=64, kernel_size=3, dropout=0, cin_channels=80, upsample_conditional_features=True,
upsample_scales=[4,4,4,4], scalar_input=True, legacy=False)``; ours: ``WaveNetConfig()`` (the same 24 layers
in 4 cycles, 64/128/64 channels, kernel 3, 80 mels, hop 256, 10-component MoL). Both get the same random
mel and waveform. Measured, in each precision (``--precisions``, default fp32 and bf16): parallel forward
without gradients, one training step (forward, MoL loss, backward), cached generation at batch 1 (peer:
``incremental_forward`` as configured, and again after its ``make_generation_fast_``) and batch 16 (ours
only; the peer's incremental path is batch 1). bf16 training and forward are bf16 autocast, as the Trainer
runs them (``train.precision = "bf16"``), for both models; our bf16 generation runs a copy with bf16
weights (as bf16 inference does), the peer's runs under autocast; a path that cannot run in bf16 yet
prints "n/a". Timings are medians of interleaved rounds, so background load hits both alike; the load
average is printed with the results. Each precision's floor is the model's FLOPs per sample over this
machine's dense matmul rate at that precision (a 1024² torch.matmul in float32 or bfloat16, timed in the
same rounds as the forward and training steps). Targets (issue #16): our bf16 training step >= 1.7x our
fp32 one and >= 1.7x r9y9's fp32 one, on hardware with native bf16 (``native_bf16``); without it bf16 is
emulated and far slower, so run it small (e.g. ``--frames 4 --gen-frames 1``).

Run: .venv/bin/pip install --no-deps wavenet_vocoder
     .venv/bin/python benchmarks/bench_wavenet_vs_r9y9.py      (a few minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import copy
import os
from collections.abc import Callable

import torch
from timing import DTYPES, interleaved_seconds, matmul_calls, matmul_rate, runnable
from wavenet_vocoder import WaveNet as PeerWaveNet
from wavenet_vocoder.mixture import discretized_mix_logistic_loss

from wavesynth.synthesis import TeacherSynthesis
from wavesynth.train import autocast, native_bf16
from wavesynth.wavenet import WaveNet, WaveNetConfig, generate


def flops_per_sample(config: WaveNetConfig, num_params: int, context: int) -> int:
    """2 × multiply-adds per output sample of the teacher as wavesynth evaluates it.

    Per layer: the dilated convolution k·R·G, the residual and skip 1x1 G/2·(R+S), and the conditioning
    upsampled from frame rate, G·(2Q+2) (its projection V·mel runs per frame, 1/hop of the samples).
    """
    R, G, S, C, k = (
        config.residual_channels,
        config.gate_channels,
        config.skip_channels,
        config.n_mels,
        config.kernel_size,
    )
    per_layer = k * R * G + G // 2 * (R + S) + G * (2 * context + 2) + C * G // config.hop_length
    return 2 * (R + config.layers * per_layer + S * S + S * num_params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2, help="batch of the parallel pass and training step")
    parser.add_argument("--frames", type=int, default=16, help="mel frames per utterance (×256 samples)")
    parser.add_argument("--gen-frames", type=int, default=2, help="mel frames generated per utterance")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    if not precisions or any(p not in DTYPES for p in precisions):
        parser.error(f"--precisions must list some of {', '.join(DTYPES)}, got {args.precisions!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    config = WaveNetConfig()
    ours = WaveNet(config)
    peer = PeerWaveNet(
        out_channels=30,
        layers=24,
        stacks=4,
        residual_channels=64,
        gate_channels=128,
        skip_out_channels=64,
        kernel_size=3,
        dropout=0,
        cin_channels=80,
        upsample_conditional_features=True,
        upsample_scales=[4, 4, 4, 4],
        scalar_input=True,
        legacy=False,
    )
    count = {
        name: sum(p.numel() for p in m.parameters()) for name, m in (("wavesynth", ours), ("r9y9", peer))
    }
    native = "native bf16" if native_bf16("cpu") else "no native bf16 (bf16 is emulated)"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {native}; parameters: {count}")

    T = args.frames * config.hop_length
    mel = torch.randn(args.batch, config.n_mels, args.frames)
    x = torch.rand(args.batch, T) * 2 - 1

    def ours_forward(precision: str) -> None:
        with torch.inference_mode(), autocast(precision, "cpu"):
            ours.distribution_params(x, mel)

    def peer_forward(precision: str) -> None:
        with torch.inference_mode(), autocast(precision, "cpu"):
            peer(x.unsqueeze(1), mel)

    def ours_train(precision: str) -> None:
        ours.zero_grad(set_to_none=True)
        with autocast(precision, "cpu"):
            loss = -ours.log_prob(x, mel).mean()
        loss.backward()

    def peer_train(precision: str) -> None:
        peer.zero_grad(set_to_none=True)
        with autocast(precision, "cpu"):
            out = peer(x.unsqueeze(1), mel)
            loss = discretized_mix_logistic_loss(out.float(), x.unsqueeze(-1), num_classes=2**16)
        loss.backward()

    # forward and training steps of both models in every precision, and the matmul floors, in one set of
    # interleaved rounds (train mode for all: neither model has dropout or batch-norm here)
    ours.train(), peer.train()
    steps: dict[str, Callable[[], object]] = {}
    for precision in precisions:
        steps[f"forward wavesynth {precision}"] = lambda p=precision: ours_forward(p)
        steps[f"forward r9y9 {precision}"] = lambda p=precision: peer_forward(p)
        steps[f"train wavesynth {precision}"] = lambda p=precision: ours_train(p)
        steps[f"train r9y9 {precision}"] = lambda p=precision: peer_train(p)
    steps.update(matmul_calls("cpu", precisions))
    seconds = interleaved_seconds(steps, args.repeats)

    gen_mel = torch.randn(16, config.n_mels, args.gen_frames)
    gen_T = args.gen_frames * config.hop_length
    ours.eval(), peer.eval()
    generation: dict[str, Callable[[], object]] = {}
    for precision in precisions:
        model = ours if precision == "fp32" else TeacherSynthesis(copy.deepcopy(ours)).cast(precision)
        m = gen_mel
        generation[f"wavesynth b1 {precision}"] = lambda model=model, m=m: generate(model, m[:1])
        generation[f"wavesynth b16 {precision}"] = lambda model=model, m=m: generate(model, m)

        def peer_generate(precision: str = precision) -> None:
            with torch.inference_mode(), autocast(precision, "cpu"):
                peer.incremental_forward(c=gen_mel[:1], T=gen_T)

        generation[f"r9y9 b1 {precision}"] = peer_generate
    missing = set()
    for key, fn in list(generation.items()):
        error = runnable(fn) if not key.endswith("fp32") else None
        if error is not None:
            what = "cached generation" if key.startswith("wavesynth") else "peer generation"
            print(f"{key}: n/a ({what} not bf16 yet): {error}")
            missing.add(key)
            del generation[key]
    seconds.update(interleaved_seconds(generation, args.repeats))
    peer.make_generation_fast_()  # drops the weight-norm hooks, as r9y9's synthesis script does
    fast = {f"r9y9 fast b1 {p}": generation[f"r9y9 b1 {p}"] for p in precisions
            if f"r9y9 b1 {p}" in generation}
    seconds.update(interleaved_seconds(fast, args.repeats))

    flops = flops_per_sample(config, ours.head.num_params, ours.upsampler.context)
    samples = args.batch * T
    rows = [  # name, our key, peer key, samples per call, FLOPs per sample
        ("parallel forward", "forward wavesynth", "forward r9y9", samples, flops),
        ("training step", "train wavesynth", "train r9y9", samples, 3 * flops),
        ("generation b1", "wavesynth b1", "r9y9 b1", gen_T, flops),
        ("  vs r9y9 generation-fast", "wavesynth b1", "r9y9 fast b1", gen_T, flops),
        ("generation b16 (aggregate)", "wavesynth b16", None, 16 * gen_T, flops),
    ]

    def rate(key: str | None, precision: str, count: int) -> float | None:
        key = None if key is None else f"{key} {precision}"
        return count / seconds[key] if key in seconds else None

    print(f"\nsamples/s, parallel/train on batch {args.batch} × {T} samples, generation of {gen_T} samples; "
          "floor = matmul rate at that precision / FLOPs per sample")
    header = f"{'':28s}"
    for precision in precisions:
        header += (f" | {'wavesynth ' + precision:>14s}{'r9y9 ' + precision:>12s}{'ratio':>7s}{'floor':>11s}"
                   f"{'of floor':>9s}")
    print(header)
    for name, our_key, peer_key, count, row_flops in rows:
        line = f"{name:28s}"
        for precision in precisions:
            ours_rate, peer_rate = rate(our_key, precision, count), rate(peer_key, precision, count)
            floor = matmul_rate(seconds, precision) / row_flops
            line += " | " + (f"{ours_rate:14,.0f}" if ours_rate else f"{'n/a':>14s}")
            line += f"{peer_rate:12,.0f}" if peer_rate else f"{'-' if peer_key is None else 'n/a':>12s}"
            line += f"{ours_rate / peer_rate:6.1f}x" if ours_rate and peer_rate else f"{'-':>7s}"
            line += f"{floor:11,.0f}" + (f"{ours_rate / floor:9.0%}" if ours_rate else f"{'-':>9s}")
        print(line)

    if "fp32" in precisions and "bf16" in precisions:
        train = {k.removeprefix("train "): samples / v for k, v in seconds.items() if k.startswith("train ")}
        print("\ntraining step speed, bf16 against fp32 (targets >= 1.7x, on native bf16 hardware):")
        for a, b in (("wavesynth bf16", "wavesynth fp32"), ("wavesynth bf16", "r9y9 fp32"),
                     ("r9y9 bf16", "r9y9 fp32")):
            print(f"  {a} / {b}: {train[a] / train[b]:.2f}x")
    if "wavesynth b1 fp32" in seconds and "wavesynth b16 fp32" in seconds:
        print(f"\ngeneration b16 / b1 aggregate (fp32): "
              f"{16 * seconds['wavesynth b1 fp32'] / seconds['wavesynth b16 fp32']:.1f}x")
    rates = ", ".join(f"{p} {matmul_rate(seconds, p) / 1e9:.1f}" for p in precisions)
    print(f"floor: {flops / 1e6:.2f} MFLOP per sample (training ×3); dense 1024² matmul GFLOP/s: {rates}")
    if "bf16" in precisions and not native_bf16("cpu"):
        print("no native bf16 here: the bf16 matmul is emulated, so its floor is no hardware limit")
    per_sample_conditioning = 2 * config.layers * config.n_mels * config.gate_channels
    print(f"(r9y9 projects the conditioning per sample: {per_sample_conditioning / 1e6:.2f} MFLOP more)")
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
