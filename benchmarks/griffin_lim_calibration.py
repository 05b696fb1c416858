"""What the evaluation's log-mel distance and STOI reward: Griffin-Lim after 0, 4, 16 and 48 iterations.

With 0 iterations the output has the mel's pseudo-inverse magnitudes and random phases; each iteration
makes the phases more consistent between overlapping frames. The table puts a vocoder's figures on that
scale: a model near the 0-iteration row has about the right magnitudes but incoherent phases (for speech:
no harmonics that last from frame to frame). Copy synthesis of every clip (a feature cache's validation
split, or audio files), as ``wavesynth evaluate`` does.

Run: .venv/bin/python benchmarks/griffin_lim_calibration.py --data cache/ljspeech-mini-22k cache/selfrec-22k
     [--preset hifigan-22k] [--iterations 0 4 16 48]   (about 2 minutes for 58 s of audio on 1 thread)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from wavesynth.audio import MelExtractor, get_preset
from wavesynth.eval import griffin_lim, log_mel_distance, log_mel_distance_by_region, stoi
from wavesynth.eval.report import REGIONS, collect_clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help="feature caches or audio folders")
    parser.add_argument("--preset", default="hifigan-22k", help="mel preset (not a normalising one)")
    parser.add_argument("--iterations", nargs="+", type=int, default=[0, 4, 16, 48])
    args = parser.parse_args()
    config = get_preset(args.preset)
    extractor = MelExtractor(config)
    clips = [clip for data in args.data for clip in collect_clips(data)]
    waves = [clip.load(config.sample_rate) for clip in clips]
    mels = [extractor.log_mel(torch.from_numpy(wave)).numpy() for wave in waves]
    print(f"{len(clips)} clips, {sum(w.shape[0] for w in waves) / config.sample_rate:.1f} s, preset "
          f"{config.name}; means over clips\n")
    print("| iterations | log-mel distance (dB) | STOI | " + " | ".join(REGIONS.values()) + " |")
    print("|" + "---|" * (3 + len(REGIONS)))
    for iterations in args.iterations:
        scores = []
        for wave, mel in zip(waves, mels, strict=True):
            output = griffin_lim(mel, config, iterations=iterations)
            regions = log_mel_distance_by_region(wave, output, config)
            scores.append([log_mel_distance(wave, output, config), stoi(wave, output, config.sample_rate),
                           *regions.values()])
        mean = np.mean(scores, axis=0)
        print(f"| {iterations} | {mean[0]:.2f} | {mean[1]:.3f} | " + " | ".join(f"{m:.2f}" for m in mean[2:])
              + " |", flush=True)


if __name__ == "__main__":
    main()
