"""Parallel WaveNet student synthesis speed against the teacher's cached generation and the matmul floor.

Two sizes, each in one process run with the same random mel:

* paper: ``StudentConfig()`` (4 flows of 10, 10, 10 and 30 layers, 64/128 channels) against a WaveNet
  teacher of the paper's size class (30 layers in 3 cycles, 64/128/64 channels, 10-component MoL);
* shipped: the student and teacher of ``recipes/ljspeech/{student,teacher}.toml``.

Measured at batch 1, in each precision (``--precisions``, default fp32 and bf16): the student's
``sample(mel)`` (one parallel pass per flow) on ``--seconds`` of 22.05 kHz audio, and its peer, the
teacher's cached ``generate(mel)``, on ``--teacher-frames`` frames (samples/s does not depend on the
length). bf16 is inference in bf16: a copy of each model cast as ``Vocoder(precision="bf16")`` casts it
(``wavesynth.synthesis.StudentSynthesis.cast``: a student's last flow stays float32, unless
``--last-flow-bf16``, which shows what that costs in speed); a path that cannot run
in bf16 prints "n/a". Real-time factor = synthesis time / audio duration (< 1 is faster than real time).
Each precision's floor is the student's FLOPs per sample as wavesynth evaluates them, flow by flow, over
this machine's dense matmul rate at the precision that flow runs in (a 1024² torch.matmul in float32 or
bfloat16), measured in the same rounds with the same thread count.
Timings are medians of interleaved rounds, so background load hits every contender (and the floors) alike;
the load average is printed with the results. Where the CPU has no native bf16 (``native_bf16``), bf16 is
emulated and far slower: run it at a small size (e.g. ``--seconds 0.1``).

Run: .venv/bin/python benchmarks/bench_student.py [--threads N] [--device cuda] [--precisions fp32,bf16]
     (a minute or two on 2 cores)
"""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path

import torch
from timing import DTYPES, interleaved_seconds, matmul_calls, matmul_rate, runnable

from wavesynth.parallel import ParallelWaveNet, StudentConfig
from wavesynth.parallel.task import DistillConfig
from wavesynth.synthesis import StudentSynthesis, TeacherSynthesis
from wavesynth.train import load_config, native_bf16
from wavesynth.wavenet import WaveNet, WaveNetConfig, generate
from wavesynth.wavenet.task import TeacherConfig

RECIPES = Path(__file__).resolve().parent.parent / "recipes" / "ljspeech"
SAMPLE_RATE = 22050


def flow_flops_per_sample(config: StudentConfig, context: int) -> list[int]:
    """2 × multiply-adds per output sample of each flow of ``sample`` (``packed_flow``).

    Per layer: the k dilated taps k·R·G, the residual 1x1 G/2·R, the conditioning upsampled from frame
    rate G·(2Q+2) (its projection V·mel runs per frame: C·G/hop). Per flow: input and output 1x1.
    """
    R, G, C, k = config.channels, config.gate_channels, config.n_mels, config.kernel_size
    per_layer = k * R * G + G // 2 * R + G * (2 * context + 2) + C * G // config.hop_length
    return [2 * (layers * per_layer + 3 * R) for layers in config.flow_layers]


def floor_rate(flops: list[int], seconds: dict[str, float], precision: str, last_flow_bf16: bool) -> float:
    """Samples/s at the matmul rate: bf16 runs every flow but the last in bf16 (``StudentSynthesis.cast``),
    the last one too with ``last_flow_bf16``."""
    last = precision if last_flow_bf16 else "fp32"
    rates = [matmul_rate(seconds, precision)] * (len(flops) - 1) + [matmul_rate(seconds, last)]
    return 1 / sum(f / r for f, r in zip(flops, rates, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="audio the student synthesises per call")
    parser.add_argument("--teacher-frames", type=int, default=4, help="frames the teacher generates per call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (the floor is then that device's)")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    parser.add_argument("--last-flow-bf16", action="store_true",
                        help="bf16 in the student's last flow too (faster; outside the drift bound)")
    args = parser.parse_args()
    device = torch.device(args.device)
    precisions = args.precisions.split(",")
    if not precisions or any(p not in DTYPES for p in precisions):
        parser.error(f"--precisions must list some of {', '.join(DTYPES)}, got {args.precisions!r}")
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
    configs, calls, missing = {}, {}, {}
    for name, (student_config, teacher_config) in sizes.items():
        student = ParallelWaveNet(student_config).to(device).eval()
        teacher = WaveNet(teacher_config).to(device).eval()
        configs[name] = student
        for precision in precisions:
            s = StudentSynthesis(copy.deepcopy(student)).cast(precision)
            if args.last_flow_bf16 and precision == "bf16":
                s.flows[-1].to(torch.bfloat16)
            t = TeacherSynthesis(copy.deepcopy(teacher)).cast(precision)
            m, tm = mel, teacher_mel
            contenders = {
                f"{name} student {precision}": (lambda s=s, m=m: s.sample(m), "packed path"),
                f"{name} teacher {precision}": (lambda t=t, tm=tm: generate(t, tm), "cached generation"),
            }
            for key, (fn, what) in contenders.items():
                error = runnable(fn) if precision != "fp32" else None
                if error is None:
                    calls[key] = fn
                else:
                    missing[key] = "n/a"
                    print(f"{key}: n/a ({what} not {precision} yet): {error}")
    threads = f"{torch.get_num_threads()} threads"
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else threads
    native = "native bf16" if native_bf16(device) else "no native bf16 (bf16 is emulated)"
    print(f"torch {torch.__version__}, {where}, {native}; student audio {frames} frames "
          f"({frames * 256} samples), teacher {args.teacher_frames} frames, batch 1")
    calls.update(matmul_calls(device, sorted({*precisions, "fp32"})))  # fp32: the last flow's floor
    synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    seconds = interleaved_seconds(calls, args.repeats, synchronize)

    def rate(key: str, samples: int) -> str:
        return missing[key].rjust(12) if key in missing else f"{samples / seconds[key]:12,.0f}"

    print("\nsamples/s at batch 1; RTF = synthesis time / audio time; floor = matmul rate / student FLOPs")
    header = f"{'':9s}{'MFLOP/sample':>13s}"
    for precision in precisions:
        header += (f" | {precision + ' student':>12s}{'RTF':>6s}{'teacher':>12s}{'speed-up':>9s}"
                   f"{'floor':>10s}{'of floor':>9s}")
    print(header)
    for name, student in configs.items():
        flops = flow_flops_per_sample(student.config, student.mel_context_frames)
        line = f"{name:9s}{sum(flops) / 1e6:13.2f}"
        for precision in precisions:
            s_key, t_key = f"{name} student {precision}", f"{name} teacher {precision}"
            floor = floor_rate(flops, seconds, precision, args.last_flow_bf16)
            line += f" | {rate(s_key, frames * 256)}"
            if s_key in missing:
                line += f"{'-':>6s}"
            else:
                student_rate = frames * 256 / seconds[s_key]
                line += f"{SAMPLE_RATE / student_rate:6.2f}"
            line += rate(t_key, args.teacher_frames * 256)
            if s_key in missing or t_key in missing:
                line += f"{'-':>9s}"
            else:
                speed_up = seconds[t_key] / args.teacher_frames / (seconds[s_key] / frames)
                line += f"{speed_up:8.1f}x"
            line += f"{floor:10,.0f}"
            line += f"{'-':>9s}" if s_key in missing else f"{frames * 256 / seconds[s_key] / floor:9.0%}"
        print(line)
    if "fp32" in precisions and "bf16" in precisions:
        for name in configs:
            keys = [f"{name} student {p}" for p in ("fp32", "bf16")]
            if not any(k in missing for k in keys):
                print(f"{name} student bf16 / fp32 speed: {seconds[keys[0]] / seconds[keys[1]]:.2f}x")
    rates = ", ".join(f"{p} {matmul_rate(seconds, p) / 1e9:.1f}" for p in precisions)
    print(f"\ndense 1024² matmul GFLOP/s: {rates}; real time = {SAMPLE_RATE:,} samples/s")
    if "bf16" in precisions and not native_bf16(device):
        print("no native bf16 here: the bf16 matmul is emulated, so its floor is no hardware limit")
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
