"""wavesynth's WaveNet teacher against r9y9's wavenet_vocoder 0.1.1 of the same size, in one process run.

Peer: ``WaveNet(out_channels=30, layers=24, stacks=4, residual_channels=64, gate_channels=128,
skip_out_channels=64, kernel_size=3, dropout=0, cin_channels=80, upsample_conditional_features=True,
upsample_scales=[4,4,4,4], scalar_input=True, legacy=False)``; ours: ``WaveNetConfig()`` (the same 24 layers
in 4 cycles, 64/128/64 channels, kernel 3, 80 mels, hop 256, 10-component MoL). Both get the same random
mel and waveform. Measured: parallel forward without gradients, one training step (forward, MoL loss,
backward), cached generation at batch 1 (peer: ``incremental_forward`` as configured, and again after its
``make_generation_fast_``) and batch 16 (ours only; the peer's incremental path is batch 1). Timings are
medians of interleaved rounds, so background load hits both alike; the load average is printed with the
results. The floor is the model's FLOPs per sample over this machine's dense fp32 matmul rate (a large
torch.matmul).

Run: .venv/bin/pip install --no-deps wavenet_vocoder
     .venv/bin/python benchmarks/bench_wavenet_vs_r9y9.py      (a few minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import os

import torch
from timing import interleaved_seconds
from wavenet_vocoder import WaveNet as PeerWaveNet
from wavenet_vocoder.mixture import discretized_mix_logistic_loss

from wavesynth.wavenet import WaveNet, WaveNetConfig


def matmul_flops_per_second(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = interleaved_seconds({"mm": lambda: torch.matmul(a, b)}, repeats)["mm"]
    return 2 * n**3 / seconds


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
    args = parser.parse_args()
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
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; parameters: {count}")

    T = args.frames * config.hop_length
    mel = torch.randn(args.batch, config.n_mels, args.frames)
    x = torch.rand(args.batch, T) * 2 - 1

    def ours_forward():
        with torch.inference_mode():
            ours.distribution_params(x, mel)

    def peer_forward():
        with torch.inference_mode():
            peer(x.unsqueeze(1), mel)

    def ours_train():
        ours.zero_grad(set_to_none=True)
        (-ours.log_prob(x, mel).mean()).backward()

    def peer_train():
        peer.zero_grad(set_to_none=True)
        discretized_mix_logistic_loss(
            peer(x.unsqueeze(1), mel), x.unsqueeze(-1), num_classes=2**16
        ).backward()

    ours.eval(), peer.eval()
    forward = interleaved_seconds({"wavesynth": ours_forward, "r9y9": peer_forward}, args.repeats)
    ours.train(), peer.train()
    train = interleaved_seconds({"wavesynth": ours_train, "r9y9": peer_train}, args.repeats)

    samples = args.batch * T
    gen_mel = torch.randn(16, config.n_mels, args.gen_frames)
    gen_T = args.gen_frames * config.hop_length
    ours.eval(), peer.eval()

    def peer_generate():
        with torch.inference_mode():
            peer.incremental_forward(c=gen_mel[:1], T=gen_T)

    gen_repeats = args.repeats
    generate = interleaved_seconds(
        {
            "wavesynth b1": lambda: ours.generate(gen_mel[:1]),
            "wavesynth b16": lambda: ours.generate(gen_mel),
            "r9y9 b1": peer_generate,
        },
        gen_repeats,
    )
    peer.make_generation_fast_()  # drops the weight-norm hooks, as r9y9's synthesis script does
    generate["r9y9 fast b1"] = interleaved_seconds({"r9y9": peer_generate}, gen_repeats)["r9y9"]

    rate = matmul_flops_per_second()
    flops = flops_per_sample(config, ours.head.num_params, ours.upsampler.context)
    rows = [
        ("parallel forward", samples / forward["wavesynth"], samples / forward["r9y9"], rate / flops),
        ("training step", samples / train["wavesynth"], samples / train["r9y9"], rate / (3 * flops)),
        ("generation b1", gen_T / generate["wavesynth b1"], gen_T / generate["r9y9 b1"], rate / flops),
        (
            "  vs r9y9 generation-fast",
            gen_T / generate["wavesynth b1"],
            gen_T / generate["r9y9 fast b1"],
            rate / flops,
        ),
        ("generation b16 (aggregate)", 16 * gen_T / generate["wavesynth b16"], None, rate / flops),
    ]
    print(f"\nsamples/s, parallel/train on batch {args.batch} × {T} samples, generation of {gen_T} samples")
    print(f"{'':28s}{'wavesynth':>12s}{'r9y9':>12s}{'ratio':>8s}{'floor':>12s}{'of floor':>10s}")
    for name, ours_rate, peer_rate, floor in rows:
        peer_txt = f"{peer_rate:12,.0f}{ours_rate / peer_rate:7.1f}x" if peer_rate else f"{'-':>12s}{'-':>8s}"
        print(f"{name:28s}{ours_rate:12,.0f}{peer_txt}{floor:12,.0f}{ours_rate / floor:9.0%}")
    b16_over_b1 = rows[-1][1] / rows[2][1]
    print(f"\ngeneration b16 / b1 aggregate: {b16_over_b1:.1f}x")
    print(f"floor: {flops / 1e6:.2f} MFLOP per sample (training ×3), dense matmul {rate / 1e9:.1f} GFLOP/s")
    per_sample_conditioning = 2 * config.layers * config.n_mels * config.gate_channels
    print(f"(r9y9 projects the conditioning per sample: {per_sample_conditioning / 1e6:.2f} MFLOP more)")
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
