"""bf16 synthesis against fp32 on held-out audio: the drift of bf16 arithmetic, and whether it is audible.

For each held-out clip x the model's mel c = mel(x) is synthesised twice with the same noise, by
``Vocoder(precision="fp32")`` and ``Vocoder(precision="bf16")``; each output is scored against x (log-mel
distance in dB, STOI). Printed: the waveform difference ‖x̂_bf16 - x̂_fp32‖ / ‖x̂_fp32‖ over all the audio,
and the mean scores of both precisions with their differences, against issue #16's bounds: log-mel
distance within 0.1 dB of fp32 and STOI within 0.005. Clips are taken until ``--seconds`` of audio (10 s by
default). On a CPU without native bf16 the bf16 pass is emulated (slow, same numerics).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bf16_synthesis_drift.py [--model NAME|DIR]
     [--data cache/ljspeech-mini-22k cache/selfrec-22k] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from wavesynth.eval.metrics import log_mel_distance, stoi
from wavesynth.eval.report import collect_clips
from wavesynth.vocoder import Vocoder

LOG_MEL_BOUND_DB, STOI_BOUND = 0.1, 0.005


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ljspeech-22k-student")
    parser.add_argument("--data", nargs="+", default=["cache/ljspeech-mini-22k", "cache/selfrec-22k"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    vocoders = {p: Vocoder.from_pretrained(args.model, "cpu", precision=p) for p in ("fp32", "bf16")}
    config = vocoders["fp32"].config
    clips = [clip for data in args.data for clip in collect_clips(data)]
    scores = {p: {"log_mel_distance_db": [], "stoi": []} for p in vocoders}
    difference, energy, seconds = 0.0, 0.0, 0.0
    for clip in clips:
        if seconds >= args.seconds:
            break
        wave = clip.load(config.sample_rate)
        mel = vocoders["fp32"].mel(wave)
        outputs = {p: voc.synthesize(mel) for p, voc in vocoders.items()}
        difference += float(np.sum((outputs["bf16"] - outputs["fp32"]) ** 2))
        energy += float(np.sum(outputs["fp32"] ** 2))
        seconds += wave.shape[0] / config.sample_rate
        for p, audio in outputs.items():
            scores[p]["log_mel_distance_db"].append(log_mel_distance(wave, audio, config))
            scores[p]["stoi"].append(stoi(wave, audio, config.sample_rate))
        print(f"{clip.id}: log-mel {scores['fp32']['log_mel_distance_db'][-1]:.3f} / "
              f"{scores['bf16']['log_mel_distance_db'][-1]:.3f} dB, STOI {scores['fp32']['stoi'][-1]:.4f} / "
              f"{scores['bf16']['stoi'][-1]:.4f} (fp32 / bf16)", flush=True)
    means = {p: {k: float(np.mean(v)) for k, v in s.items()} for p, s in scores.items()}
    delta_db = means["bf16"]["log_mel_distance_db"] - means["fp32"]["log_mel_distance_db"]
    delta_stoi = means["bf16"]["stoi"] - means["fp32"]["stoi"]
    result = {
        "model": args.model, "clips": len(scores["fp32"]["stoi"]), "seconds": seconds,
        "waveform_relative_rms_difference": float(np.sqrt(difference / energy)),
        "fp32": means["fp32"], "bf16": means["bf16"],
        "log_mel_delta_db": delta_db, "stoi_delta": delta_stoi,
        "within_bounds": abs(delta_db) <= LOG_MEL_BOUND_DB and abs(delta_stoi) <= STOI_BOUND,
    }
    print(f"{args.model}: {result['clips']} clips, {seconds:.1f} s; bf16 - fp32 waveform "
          f"{result['waveform_relative_rms_difference']:.4f} of the fp32 RMS")
    print(f"log-mel distance fp32 {means['fp32']['log_mel_distance_db']:.3f} dB, bf16 "
          f"{means['bf16']['log_mel_distance_db']:.3f} dB (difference {delta_db:+.3f}, "
          f"bound ±{LOG_MEL_BOUND_DB})")
    print(f"STOI fp32 {means['fp32']['stoi']:.4f}, bf16 {means['bf16']['stoi']:.4f} "
          f"(difference {delta_stoi:+.4f}, bound ±{STOI_BOUND}): "
          f"{'within' if result['within_bounds'] else 'OUTSIDE'} the bounds")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(result, file, indent=2)


if __name__ == "__main__":
    main()
