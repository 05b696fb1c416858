"""Pitch trackers for the cache's labels: accuracy on signals of known F0, agreement on real speech, speed.

    OMP_NUM_THREADS=1 python benchmarks/bench_pitch_trackers.py [--clips 12]

Synthetic: voiced runs of a 1/k harmonic series whose F0 glides and wobbles (vibrato) between 70 and 400
Hz, separated by white-noise bursts and silence, at 30 dB SNR. The truth is the analytic F0 at the mel
frame centres (0 in the noise and silence). Real speech: the first clips of the LJ Speech and selfrec
samples in ../shared/data, every tracker scored against the others (no ground truth there). Speed is
seconds of audio tracked per second of wall time on this process's threads.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from wavesynth.audio import get_preset, load_audio
from wavesynth.audio.pitch import TRACKERS, track_pitch
from wavesynth.eval.metrics import f0_rmse_cents, gross_pitch_error, vuv_error

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def synthetic(config, seconds: float = 12.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(wave, true frame F0): alternating 0.4-1.2 s voiced runs and 0.1-0.3 s noise or silence gaps."""
    rng = np.random.default_rng(seed)
    sr, n = config.sample_rate, int(seconds * config.sample_rate)
    f = np.zeros(n)
    noise_gate = np.zeros(n)
    t = 0
    while t < n:
        run = int(rng.uniform(0.4, 1.2) * sr)
        lo, hi = np.exp(rng.uniform(np.log(70), np.log(400), 2))
        u = np.arange(min(run, n - t)) / sr
        f[t : t + len(u)] = np.geomspace(lo, hi, len(u)) * (1 + 0.03 * np.sin(2 * np.pi * 5.5 * u))
        t += len(u)
        gap = int(rng.uniform(0.1, 0.3) * sr)
        noise_gate[t : t + gap] = rng.random() < 0.5
        t += gap
    phase = np.cumsum(f / sr)
    wave = sum(np.sin(2 * np.pi * k * phase) / k * (k * f < sr / 2) for k in range(1, 30))
    wave = 0.3 * wave / np.abs(wave).max() + 0.05 * noise_gate * rng.standard_normal(n)
    wave = wave + rng.standard_normal(n) * np.sqrt(np.mean(wave**2) / 1000)  # 30 dB SNR
    frames = config.frames(n)
    centres = np.clip((np.arange(frames) * config.hop_length + config.frame_offset).astype(int), 0, n - 1)
    return wave.astype(np.float32), f[centres]


def real_clips(config, count: int) -> list[np.ndarray]:
    corpora = ("ljspeech-mini", "selfrec-22k")
    paths = [p for corpus in corpora for p in sorted((DATA / corpus / "wavs").iterdir())[:count]]
    return [load_audio(p, config.sample_rate) for p in paths]


def scores(reference: np.ndarray, estimate: np.ndarray) -> str:
    return (f"GPE {100 * gross_pitch_error(reference, estimate):5.1f} %  "
            f"RMSE {f0_rmse_cents(reference, estimate):6.1f} cents  "
            f"V/UV {100 * vuv_error(reference, estimate):5.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12, help="clips per corpus for the real-speech part")
    parser.add_argument("--preset", default="hifigan-22k")
    args = parser.parse_args()
    config = get_preset(args.preset)

    wave, truth = synthetic(config)
    print(f"## synthetic, {len(wave) / config.sample_rate:.0f} s of known F0 ({args.preset})")
    for tracker in TRACKERS:
        print(f"{tracker:>10}: {scores(truth, track_pitch(wave, config, tracker).f0)}")

    clips = real_clips(config, args.clips)
    seconds = sum(len(c) for c in clips) / config.sample_rate
    tracks, rates = {}, {}
    for tracker in TRACKERS:
        start = time.perf_counter()
        tracks[tracker] = np.concatenate([track_pitch(c, config, tracker).f0 for c in clips])
        rates[tracker] = seconds / (time.perf_counter() - start)
    print(f"\n## real speech, {len(clips)} clips, {seconds:.0f} s: agreement (row = reference)")
    for a, b in itertools.combinations(TRACKERS, 2):
        print(f"{a:>10} vs {b:<10}: {scores(tracks[a], tracks[b])}")
    print("\n## speed (s of audio per s)")
    for tracker, rate in rates.items():
        print(f"{tracker:>10}: {rate:6.1f}")


if __name__ == "__main__":
    main()
