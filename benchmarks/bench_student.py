"""Parallel WaveNet student synthesis speed against the teacher's cached generation and the matmul floor.

Two sizes, each in one process run with the same random mel:

* paper: ``StudentConfig()`` (4 flows of 10, 10, 10 and 30 layers, 64/128 channels) against a WaveNet
  teacher of the paper's size class (30 layers in 3 cycles, 64/128/64 channels, 10-component MoL);
* shipped: the student and teacher of ``recipes/ljspeech/{student,teacher}.toml``.

Measured at batch 1: the student's ``sample(mel)`` (one parallel pass per flow) on ``--seconds`` of
22.05 kHz audio, and the teacher's cached ``generate(mel)`` on ``--teacher-frames`` frames (samples/s
does not depend on the length). Real-time factor = synthesis time / audio duration (< 1 is faster than
real time). The floor is the student's FLOPs per sample as wavesynth evaluates them over this machine's
dense fp32 matmul rate (a 2048² torch.matmul), measured in the same rounds with the same thread count.
Timings are medians of interleaved rounds, so background load hits every contender (and the floor)
alike; the load average is printed with the results.

Run: .venv/bin/python benchmarks/bench_student.py [--threads N] [--device cuda]   (a minute or two on 2 cores)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from timing import interleaved_seconds

from wavesynth.parallel import ParallelWaveNet, StudentConfig
from wavesynth.parallel.task import DistillConfig
from wavesynth.train import load_config
from wavesynth.wavenet import WaveNet, WaveNetConfig
from wavesynth.wavenet.task import TeacherConfig

RECIPES = Path(__file__).resolve().parent.parent / "recipes" / "ljspeech"
SAMPLE_RATE = 22050


def student_flops_per_sample(config: StudentConfig, context: int) -> int:
    """2 × multiply-adds per output sample of ``sample`` (``packed_flow``).

    Per layer: the k dilated taps k·R·G, the residual 1x1 G/2·R, the conditioning upsampled from frame
    rate G·(2Q+2) (its projection V·mel runs per frame: C·G/hop). Per flow: input and output 1x1.
    """
    R, G, C, k = config.channels, config.gate_channels, config.n_mels, config.kernel_size
    per_layer = k * R * G + G // 2 * R + G * (2 * context + 2) + C * G // config.hop_length
    return 2 * sum(layers * per_layer + 3 * R for layers in config.flow_layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="audio the student synthesises per call")
    parser.add_argument("--teacher-frames", type=int, default=4, help="frames the teacher generates per call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (the floor is then that device's)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    torch.set_grad_enabled(False)

    sizes = {
        "paper": (StudentConfig(), WaveNetConfig(layers=30, cycles=3)),
        "shipped": (load_config(DistillConfig, RECIPES / "student.toml").model,
                    load_config(TeacherConfig, RECIPES / "teacher.toml").model),
    }
    frames = round(args.seconds * SAMPLE_RATE / 256)
    mel = torch.randn(1, 80, frames, device=device)
    teacher_mel = mel[..., : args.teacher_frames]
    models, calls = {}, {}
    for name, (student_config, teacher_config) in sizes.items():
        student = ParallelWaveNet(student_config).to(device).eval()
        teacher = WaveNet(teacher_config).to(device).eval()
        models[name] = student
        calls[f"{name} student"] = lambda s=student: s.sample(mel)
        calls[f"{name} teacher"] = lambda t=teacher: t.generate(teacher_mel)
    threads = f"{torch.get_num_threads()} threads"
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else threads
    print(f"torch {torch.__version__}, {where}; student audio {frames} frames "
          f"({frames * 256} samples), teacher {args.teacher_frames} frames, batch 1")
    n = 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    calls["matmul"] = lambda: torch.matmul(a, b)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    seconds = interleaved_seconds(calls, args.repeats, synchronize)
    rate = 2 * n**3 / seconds["matmul"]

    print(f"\n{'':9s}{'student samples/s':>18s}{'RTF':>7s}{'teacher samples/s':>19s}{'speed-up':>10s}"
          f"{'MFLOP/sample':>14s}{'floor samples/s':>17s}{'of floor':>10s}")
    for name, student in models.items():
        student_rate = frames * 256 / seconds[f"{name} student"]
        teacher_rate = args.teacher_frames * 256 / seconds[f"{name} teacher"]
        flops = student_flops_per_sample(student.config, student.mel_context_frames)
        print(f"{name:9s}{student_rate:18,.0f}{SAMPLE_RATE / student_rate:7.2f}{teacher_rate:19,.0f}"
              f"{student_rate / teacher_rate:9.1f}x{flops / 1e6:14.2f}{rate / flops:17,.0f}"
              f"{student_rate * flops / rate:10.0%}")
    print(f"\ndense matmul {rate / 1e9:.1f} GFLOP/s; real time = {SAMPLE_RATE:,} samples/s")
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
