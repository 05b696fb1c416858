"""Issue #15's ablation: held-out scores of students trained with and without the sine excitation.

    OMP_NUM_THREADS=2 python benchmarks/excitation_ablation.py --runs runs/ablation-none runs/ablation-sine \
        --pitch runs/ljspeech-pitch/best.pt --out runs/ablation-report

(``recipes/ljspeech/excitation-ablation.sh`` trains the runs and calls this.) For every run and every step
checkpoint in ``--steps`` (EMA weights), each held-out clip goes through copy synthesis, seed 0: a model
without excitation from the mel alone, a model with one twice, driven by pyin's F0 of the clip ("tracker F0")
and by the pitch predictor's F0 from the mel ("predicted F0"). Griffin-Lim (32 iterations) is the
reference row. The clips are the validation splits of the training caches (never trained on) and speakers
the models never saw: VCTK p227 and p228 and four CMU ARCTIC speakers, 16 kHz recordings resampled to the
model's rate. Scores: HiFi-GAN's log-mel L1 (natural-log units), the log-mel distance (dB), STOI, PESQ-wb,
and the F0 RMSE (cents) and V/UV error of pyin on the output against pyin on the clip.

Writes ``ablation.md`` (the table), ``metrics.json``, ``learning_curves.png`` and
``spectrograms_<clip>.png`` (the last step of every arm on the first unseen-speaker clip).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from wavesynth.audio import FeatureCache, MelExtractor, load_audio
from wavesynth.audio.pitch import track_pitch
from wavesynth.eval.griffin_lim import griffin_lim
from wavesynth.eval.report import plot_spectrograms, score
from wavesynth.pitch import load_pitch_predictor
from wavesynth.vocoder import Vocoder

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
CACHES = ("cache/ljspeech-mini-22k", "cache/selfrec-22k")
UNSEEN = {"vctk-mini/wav/p227": 3, "vctk-mini/wav/p228": 3, "arctic-mini/cmu_us_slt_arctic/wav": 1,
          "arctic-mini/cmu_us_clb_arctic/wav": 1, "arctic-mini/cmu_us_aew_arctic/wav": 1,
          "arctic-mini/cmu_us_axb_arctic/wav": 1}
COLUMNS = {"log_mel_l1": ("log-mel L1", "{:.3f}"), "log_mel_distance_db": ("log-mel dB", "{:.2f}"),
           "stoi": ("STOI", "{:.3f}"), "pesq_wb": ("PESQ-wb", "{:.2f}"),
           "f0_rmse_cents": ("F0 RMSE (cents)", "{:.0f}"), "vuv_error": ("V/UV error", "{:.3f}")}


def held_out_clips(sample_rate: int) -> dict[str, np.ndarray]:
    """Clip id -> waveform at ``sample_rate``: the caches' validation splits, then the unseen speakers."""
    clips = {}
    for root in CACHES:
        cache = FeatureCache.open(root)
        for row in cache.split("valid"):
            clips[row["id"]] = np.load(cache.root / row["wave"])
    for folder, count in UNSEEN.items():
        for path in sorted((DATA / folder).iterdir())[:count]:
            clips[f"{folder.split('/')[0]}/{path.stem}"] = load_audio(path, sample_rate)
    return clips


def log_mel_l1(extractor: MelExtractor, reference: np.ndarray, estimate: np.ndarray) -> float:
    n = min(len(reference), len(estimate))
    with torch.no_grad():
        a, b = (extractor.log_mel(torch.from_numpy(np.ascontiguousarray(w[:n], np.float32)))
                for w in (reference, estimate))
    return float((a - b).abs().mean())


def mean(rows: list[dict[str, float]]) -> dict[str, float]:
    """Each column's mean over clips (NaN scores, e.g. an F0 RMSE with no frame voiced in both, left out)."""
    return {key: float(np.nanmean([row[key] for row in rows])) for key in COLUMNS}


def arms(vocoder: Vocoder, arm: str) -> dict[str, dict]:
    """The synthesis modes of one model: name -> keyword arguments of ``synthesize`` (f0 filled per clip)."""
    if vocoder.excitation is None:
        return {arm: {}}
    return {f"{arm}, tracker F0": {"f0": "tracker"}, f"{arm}, predicted F0": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (their name ends with the arm)")
    parser.add_argument("--steps", nargs="+", type=int, default=[1000, 2000, 4000, 8000])
    parser.add_argument("--pitch", required=True, help="pitch predictor checkpoint for the predicted-F0 arm")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    predictor = load_pitch_predictor(args.pitch)

    results: dict[str, dict[int, dict[str, float]]] = {}
    first = Vocoder.from_pretrained(Path(args.runs[0]) / f"step-{args.steps[0]:08d}.pt", device="cpu")
    config = first.config
    extractor = MelExtractor(config)
    clips = held_out_clips(config.sample_rate)
    tracks = {uid: track_pitch(wave, config).f0 for uid, wave in clips.items()}
    print(f"{len(clips)} held-out clips, {sum(len(w) for w in clips.values()) / config.sample_rate:.0f} s")

    def scores(wave: np.ndarray, audio: np.ndarray) -> dict[str, float]:
        return {"log_mel_l1": log_mel_l1(extractor, wave, audio), **score(wave, audio, config)}

    reference = [scores(w, griffin_lim(first.mel(w), config)) for w in clips.values()]
    results["Griffin-Lim, 32 iterations"] = {0: mean(reference)}
    last_outputs, picture_clip = {}, next(uid for uid in clips if "/" in uid)
    for run in map(Path, args.runs):
        arm = run.name.removeprefix("ablation-")
        for step in args.steps:
            vocoder = Vocoder.from_pretrained(run / f"step-{step:08d}.pt", device="cpu")
            vocoder.pitch_predictor = predictor
            for name, mode in arms(vocoder, arm).items():
                rows = []
                for uid, wave in clips.items():
                    mel = vocoder.mel(wave)
                    f0 = tracks[uid] if mode.get("f0") == "tracker" else None
                    audio = vocoder.synthesize(mel, seed=0, f0=f0)
                    rows.append(scores(wave, audio))
                    if step == args.steps[-1] and uid == picture_clip:
                        last_outputs[name] = audio
                results.setdefault(name, {})[step] = mean(rows)
                print(name, step, json.dumps(results[name][step]), flush=True)

    (out / "metrics.json").write_text(json.dumps({"clips": list(clips), "results": results}, indent=2) + "\n")
    write_table(results, out / "ablation.md", len(clips))
    plot_curves(results, args.steps, out / "learning_curves.png")
    plot_spectrograms(clips[picture_clip], last_outputs, config,
                      out / f"spectrograms_{picture_clip.replace('/', '_')}.png",
                      title=f"{picture_clip}, step {args.steps[-1]}")


def write_table(results: dict, path: Path, clips: int) -> None:
    lines = [f"Held-out copy synthesis, mean over {clips} clips (log-mel, F0 RMSE, V/UV ↓; STOI, PESQ ↑)", "",
             "| system | step | " + " | ".join(title for title, _ in COLUMNS.values()) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for name, by_step in results.items():
        for step, values in by_step.items():
            cells = [fmt.format(values[key]) for key, (_, fmt) in COLUMNS.items()]
            lines.append(f"| {name} | {step or '–'} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot_curves(results: dict, steps: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["log_mel_l1", "stoi", "pesq_wb", "f0_rmse_cents"]
    figure, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6))
    for axis, key in zip(axes, keys, strict=True):
        for name, by_step in results.items():
            if 0 in by_step:
                axis.axhline(by_step[0][key], color="grey", linestyle="--", label=name)
            else:
                axis.plot(steps, [by_step[s][key] for s in steps], marker="o", label=name)
        axis.set_xscale("log", base=2)
        axis.set_xticks(steps, [f"{s // 1000}k" for s in steps])
        axis.set_xlabel("training step")
        axis.set_title(COLUMNS[key][0])
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
