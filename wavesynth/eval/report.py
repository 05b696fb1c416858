"""Copy-synthesis evaluation: audio -> mel -> audio for every clip, by the model and by Griffin-Lim.

For each clip x (at the model's rate): c = vocoder.mel(x); x̂ = vocoder.synthesize(c) (timed, for the
real-time factor, after one short warm-up call); x̃ = griffin_lim(c) from the same mel, with the baseline's
``ITERATIONS`` and with ``FEW_ITERATIONS`` (a weaker rung of the same scale). Each output is scored against x
with the metrics of ``wavesynth.eval.metrics``. The systems (``SYSTEMS``) are "model", "griffin-lim",
"griffin-lim-4" and "real", x itself: it gets only the non-intrusive DNSMOS (the quality of the data, the
ceiling of the others); its intrusive metrics and real-time factor are NaN (n/a), as x is not scored against
itself. DNSMOS needs ``speechmos`` and ``onnxruntime`` (the ``eval`` extra); without them it is left out
with a one-line notice (``progress``, else stderr; and in report.md) and its scores are NaN. ``out_dir``
receives

* ``report.md``: what was measured, a table of mean ± standard deviation over clips per system, the log-mel
  distance by region (``log_mel_distance_by_region``: low / high bins, loud / quiet frames), the figures;
* ``metrics.json``: the model, the summary and every clip's scores; ``per_file.csv``: the scores as a table;
* ``spectrograms_<id>.png`` for the first ``figures`` clips: original, model and Griffin-Lim (the baseline's
  iterations) log-mels (dB re. a unit mel magnitude) stacked on one colour scale, time in s, frequency in Hz
  on the mel scale.

Any object with ``sample_rate``, ``config`` (its ``MelConfig``), ``mel(wave)`` and ``synthesize(mel)`` can be
evaluated (``stats`` too when its preset normalises), e.g. ``wavesynth.Vocoder``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import librosa
import numpy as np
import torch

from ..audio import AUDIO_EXTENSIONS, FeatureCache, MelConfig, MelExtractor, load_audio
from ..audio.cache import MANIFEST
from ..errors import MissingFileError, WavesynthError
from .griffin_lim import ITERATIONS, griffin_lim
from .metrics import (
    SILENCE_DBFS,
    dnsmos,
    dnsmos_available,
    f0_rmse_cents,
    is_silent,
    log_mel_distance,
    log_mel_distance_by_region,
    mel_cepstral_distortion,
    pesq_wideband,
    real_time_factor,
    stoi,
    tracked_f0,
    vuv_error,
)

SYSTEMS = ("model", "griffin-lim", "griffin-lim-4", "real")
FEW_ITERATIONS = 4  # the Griffin-Lim iterations of "griffin-lim-4"
METRICS = {  # key: (column title, format, ↓ lower or ↑ higher is better)
    "log_mel_distance_db": ("log-mel distance (dB)", "{:.2f}", "↓"),
    "mcd_db": ("MCD (dB)", "{:.2f}", "↓"),
    "pesq_wb": ("PESQ (wb)", "{:.2f}", "↑"),
    "stoi": ("STOI", "{:.3f}", "↑"),
    "dnsmos_ovrl": ("DNSMOS OVRL", "{:.2f}", "↑"),
    "dnsmos_sig": ("DNSMOS SIG", "{:.2f}", "↑"),
    "dnsmos_bak": ("DNSMOS BAK", "{:.2f}", "↑"),
    "f0_rmse_cents": ("F0 RMSE (cents)", "{:.0f}", "↓"),
    "vuv_error": ("V/UV error", "{:.3f}", "↓"),
    "rtf": ("real-time factor", "{:.3g}", "↓"),
}
REGIONS = {  # key: column title of the log-mel distance over one part of the spectrogram (dB, ↓)
    "log_mel_db_below_1khz": "bins below 1 kHz",
    "log_mel_db_above_1khz": "bins above 1 kHz",
    "log_mel_db_loud_frames": "loud half of the frames",
    "log_mel_db_quiet_frames": "quiet half of the frames",
}
WARM_UP_FRAMES = 16
DNSMOS_NOTICE = ("DNSMOS left out: speechmos and onnxruntime do not import "
                 "(pip install 'wavesynth[eval]'); its cells are n/a")


class VocoderLike(Protocol):
    sample_rate: int
    config: MelConfig

    def mel(self, wave: np.ndarray) -> np.ndarray: ...

    def synthesize(self, mel: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Clip:
    """One reference recording: an audio file (any rate), or a feature cache's ``.npy`` waveform at
    ``rate`` Hz."""

    id: str
    path: Path
    rate: int | None = None

    def load(self, sample_rate: int) -> np.ndarray:
        """The waveform at ``sample_rate``; OSError or a one-line ValueError, naming the file, for one that
        cannot be read (an empty or truncated ``.npy`` included)."""
        if self.rate is None:
            return load_audio(self.path, sample_rate)
        try:
            wave = np.load(self.path, allow_pickle=False).astype(np.float32)
        except (ValueError, EOFError) as error:
            raise WavesynthError(f"{self.path}: damaged cache file ({error})") from None
        if wave.ndim != 1 or wave.size == 0:
            raise WavesynthError(f"{self.path}: damaged cache file (shape {wave.shape}, not a waveform)")
        if self.rate != sample_rate:
            wave = librosa.resample(wave, orig_sr=self.rate, target_sr=sample_rate, res_type="soxr_hq")
        return wave


def collect_clips(data: str | os.PathLike) -> list[Clip]:
    """The clips to evaluate on: a feature cache's validation split (a folder with manifest.jsonl: its
    trimmed waveforms, which training never saw), else every audio file under a folder (ids: relative
    paths without extension), or one audio file."""
    root = Path(data)
    if (root / MANIFEST).is_file():
        cache = FeatureCache.open(root)
        rows = cache.split("valid")
        if not rows:
            raise WavesynthError(f"{root}: the feature cache has no validation utterances")
        return [Clip(row["id"], root / row["wave"], cache.config.sample_rate) for row in rows]
    if root.is_file():
        return [Clip(root.stem, root)]
    if not root.is_dir():
        raise MissingFileError(f"{root}: no such folder or audio file")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise WavesynthError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder")
    return [Clip(p.relative_to(root).with_suffix("").as_posix(), p) for p in files]


def score(reference: np.ndarray, estimate: np.ndarray, config: MelConfig) -> dict[str, float]:
    """The quality metrics of one output against its reference; the pitch ones compare pyin's F0 of both
    (``metrics.tracked_f0``) on the frames voiced in both (F0 RMSE) and on all frames (V/UV)."""
    rate = config.sample_rate
    f0_ref, f0_est = tracked_f0(reference, estimate, config)
    return {
        "log_mel_distance_db": log_mel_distance(reference, estimate, config),
        "mcd_db": mel_cepstral_distortion(reference, estimate, config),
        "pesq_wb": pesq_wideband(reference, estimate, rate),
        "stoi": stoi(reference, estimate, rate),
        "f0_rmse_cents": f0_rmse_cents(f0_ref, f0_est),
        "vuv_error": vuv_error(f0_ref, f0_est),
        **{f"log_mel_db_{region}": distance
           for region, distance in log_mel_distance_by_region(reference, estimate, config).items()},
    }


def evaluate(
    vocoder: VocoderLike,
    files: Sequence[str | os.PathLike | Clip],
    out_dir: str | os.PathLike,
    figures: int = 3,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Copy-synthesis of every clip by the model and by Griffin-Lim, and DNSMOS of the clip itself; writes
    the report (module docstring) and returns what metrics.json holds. ``progress`` is called with a line per
    clip (and once with the notice when DNSMOS is unavailable). A clip that cannot be read (or is too short
    for a mel) is skipped with a one-line warning and listed under "skipped" in the report and metrics.json;
    when no clip can be read, a one-line ValueError."""
    clips = [c if isinstance(c, Clip) else Clip(Path(c).stem, Path(c)) for c in files]
    if not clips:
        raise WavesynthError("no clips to evaluate")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file in the way, a read-only place
        raise WavesynthError(f"{out}: cannot create the report folder ({error})") from None
    config, stats, rate = vocoder.config, getattr(vocoder, "stats", None), vocoder.sample_rate
    systems = {
        "model": vocoder.synthesize,
        "griffin-lim": lambda mel: griffin_lim(mel, config, stats),
        "griffin-lim-4": lambda mel: griffin_lim(mel, config, stats, iterations=FEW_ITERATIONS),
    }
    with_dnsmos = dnsmos_available()
    if not with_dnsmos:
        (progress or _to_stderr)(DNSMOS_NOTICE)
    rows, pictures, skipped, silent = [], [], [], []
    for clip in clips:
        try:
            wave = clip.load(rate)
            mel = vocoder.mel(wave)
        except (ValueError, OSError) as error:
            reason = " ".join(str(error).split())
            reason = reason if str(clip.path) in reason else f"{clip.path}: {reason}"
            skipped.append({"id": clip.id, "path": str(clip.path), "reason": reason})
            warnings.warn(f"skipped clip {clip.id}: {reason}", stacklevel=2)
            continue
        if not rows:
            vocoder.synthesize(mel[:, :WARM_UP_FRAMES])
        if is_silent(wave):
            silent.append(clip.id)
        outputs, seconds = {}, {}
        for system, synthesize in systems.items():
            started = time.perf_counter()
            outputs[system] = np.asarray(synthesize(mel), dtype=np.float32)
            seconds[system] = time.perf_counter() - started
        clip_rows = {}
        for system, audio in [*outputs.items(), ("real", wave)]:
            scores = dnsmos(audio, rate) if with_dnsmos else {}
            if system != "real":
                scores |= score(wave, audio, config)
                scores["rtf"] = real_time_factor(seconds[system], audio.shape[-1], rate)
            clip_rows[system] = _row(clip.id, system, wave.shape[0] / rate, scores)
        rows += clip_rows.values()
        if len(pictures) < figures:
            name = f"spectrograms_{_safe(clip.id)}.png"
            plot_spectrograms(wave, {k: outputs[k] for k in ("model", "griffin-lim")}, config, out / name,
                              title=clip.id)
            pictures.append(name)
        if progress:
            model_row = clip_rows["model"]
            quality = f", DNSMOS OVRL {model_row['dnsmos_ovrl']:.2f}" if with_dnsmos else ""
            progress(f"{clip.id}: PESQ {model_row['pesq_wb']:.2f}, STOI {model_row['stoi']:.3f}{quality}, "
                     f"RTF {model_row['rtf']:.3g}")
    if not rows:
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise WavesynthError(f"no clip could be read: {skipped[0]['reason']}{more}")
    result = {
        "model": _describe(vocoder),
        "files": len(rows) // len(SYSTEMS),
        "audio_seconds": sum(r["seconds"] for r in rows if r["system"] == "model"),
        "dnsmos": with_dnsmos,
        "summary": summarise(rows),
        "per_file": rows,
        "figures": pictures,
        "skipped": skipped,
        "silent_references": silent,
    }
    (out / "metrics.json").write_text(json.dumps(_json_safe(result), indent=2) + "\n", encoding="utf-8")
    _write_csv(rows, out / "per_file.csv")
    (out / "report.md").write_text(markdown(result, config), encoding="utf-8")
    return result


def summarise(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """{system: {metric: {"mean", "std", "n"}}} over clips; NaN scores (e.g. PESQ without speech) skipped."""
    summary = {}
    for system in SYSTEMS:
        summary[system] = {}
        for key in [*METRICS, *REGIONS]:
            values = np.array([r[key] for r in rows if r["system"] == system], dtype=np.float64)
            values = values[np.isfinite(values)]
            mean = float(values.mean()) if values.size else math.nan
            std = float(values.std()) if values.size else math.nan
            summary[system][key] = {"mean": mean, "std": std, "n": int(values.size)}
    return summary


def markdown(result: dict[str, Any], config: MelConfig) -> str:
    """report.md from the result of ``evaluate``."""
    model, skipped, silent = result["model"], result.get("skipped", []), result.get("silent_references", [])
    header = "| system | " + " | ".join(f"{title} {better}" for title, _, better in METRICS.values()) + " |"
    lines = [
        f"# Copy-synthesis evaluation: {model['name'] or 'model'}",
        "",
        f"{result['files']} clips, {result['audio_seconds']:.1f} s of audio; model kind {model['kind']}, "
        f"preset {config.name} ({config.sample_rate} Hz, hop {config.hop_length}, {config.n_mels} mels), "
        f"device {model['device']}, precision {model.get('precision', 'fp32')}."
        + (f" {len(skipped)} clips could not be read and are skipped (listed below)." if skipped else ""),
        "",
        "Each clip is turned into the model's mel and back into audio by the model and by Griffin-Lim "
        "(fast Griffin-Lim on the pseudo-inverse of the mel filterbank), and each output is compared with "
        "the clip. Rows: `model`; `griffin-lim`, the baseline of "
        f"{ITERATIONS} iterations; `griffin-lim-4`, the same stopped after {FEW_ITERATIONS} iterations (a "
        "weaker rung of the scale, to place the model between them); `real`, the clip itself, scored by "
        "DNSMOS alone (the quality of the data; its other cells are n/a: it is not compared with itself). "
        "Mean ± standard deviation over clips (↓: lower is better, ↑: higher is better):",
        "",
        *([] if result["dnsmos"] else [f"**{DNSMOS_NOTICE}.**", ""]),
        header,
        "|" + "---|" * (len(METRICS) + 1),
    ]
    for system, metrics in result["summary"].items():
        cells = []
        for key, (_, fmt, _) in METRICS.items():
            m = metrics[key]
            cells.append("n/a" if m["n"] == 0 else f"{fmt.format(m['mean'])} ± {fmt.format(m['std'])}")
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Where the log-mel distance comes from: the same distance over part of the mel bins (by centre "
        "frequency) or of the frames (by the clip's frame level, split at its median), in dB (↓):",
        "",
        "| system | " + " | ".join(REGIONS.values()) + " |",
        "|" + "---|" * (len(REGIONS) + 1),
    ]
    for system, metrics in result["summary"].items():
        cells = ["n/a" if metrics[key]["n"] == 0 else f"{metrics[key]['mean']:.2f}" for key in REGIONS]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "- log-mel distance: per frame the RMS over mel bins of 20·log10 of the mel magnitude ratio "
        "(magnitudes floored at 1e-5), averaged over frames.",
        "- MCD: mel-cepstral distortion 10·√2/ln10 · mean_t ‖Δc_1..24‖ of the DCT of the log mel power "
        "spectra (c0 excluded).",
        "- PESQ: ITU-T P.862.2 wide-band at 16 kHz (-0.5 .. 4.64); STOI: 0 .. 1. "
        "Clips without speech PESQ can detect are left out of its mean, and from STOI's each clip whose "
        f"reference is silent (peak below {SILENCE_DBFS:g} dBFS; pystoi would score it 0)"
        + (": " + ", ".join(f"`{uid}`" for uid in silent) if silent else "; none here") + ".",
        "- DNSMOS: DNSMOS P.835 (`speechmos`), a non-intrusive estimate of listeners' mean opinion score "
        "(1 .. 5) from the output alone: SIG the speech, BAK the background (5: no noise), OVRL overall; "
        "9.01 s windows at 16 kHz hopped by 1 s, averaged; a shorter clip is repeated until it is "
        "9.01 s long.",
        "- F0 RMSE: RMS of 1200·log2(F0_out / F0_ref) in cents over the frames that pyin finds voiced in "
        "both; V/UV error: share of frames whose voicing differs.",
        "- real-time factor: seconds of computation per second of audio on the device above (< 1: faster "
        "than real time).",
        "",
        "Per clip: `per_file.csv`, `metrics.json`.",
    ]
    if skipped:
        lines += ["", "Skipped (could not be read):", "", *(f"- `{s['id']}`: {s['reason']}" for s in skipped)]
    for name in result["figures"]:
        lines += ["", f"![{name}]({name})"]
    return "\n".join(lines) + "\n"


def plot_spectrograms(
    reference: np.ndarray, outputs: dict[str, np.ndarray], config: MelConfig, path: Path, title: str = ""
) -> None:
    """Log-mels of the reference and each output, stacked, one colour scale, axes in s and Hz."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    extractor = MelExtractor(config)
    panels = {"original": reference, **outputs}
    with torch.no_grad():
        mels = {k: extractor.log_mel(torch.from_numpy(np.ascontiguousarray(v, np.float32))).numpy()
                for k, v in panels.items()}
    to_db = 20 / math.log(10) if config.log == "ln" else 20.0
    top = max(float(m.max()) for m in mels.values()) * to_db
    seconds = reference.shape[0] / config.sample_rate
    hz = librosa.mel_frequencies(config.n_mels, fmin=config.fmin, fmax=config.fmax)
    ticks = np.linspace(0, config.n_mels - 1, 6).round().astype(int)
    figure, axes = plt.subplots(len(mels), 1, figsize=(10, 2.6 * len(mels)), sharex=True, squeeze=False)
    for axis, (name, mel) in zip(axes[:, 0], mels.items(), strict=True):
        image = axis.imshow(mel * to_db, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                            extent=(0, mel.shape[1] * config.hop_length / config.sample_rate, -0.5,
                                    config.n_mels - 0.5), interpolation="nearest")
        axis.set_yticks(ticks, [f"{hz[t]:.0f}" for t in ticks])
        axis.set_ylabel("frequency (Hz)")
        axis.set_title(name)
        axis.set_xlim(0, seconds)
        figure.colorbar(image, ax=axis, label="dB", pad=0.01)
    axes[-1, 0].set_xlabel("time (s)")
    figure.suptitle(f"{title} — log-mel ({config.name})")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _describe(vocoder: VocoderLike) -> dict[str, Any]:
    return {
        "name": getattr(vocoder, "name", ""),
        "kind": getattr(vocoder, "kind", type(vocoder).__name__),
        "preset": vocoder.config.name,
        "device": str(getattr(vocoder, "device", "cpu")),
        "precision": getattr(vocoder, "precision", "fp32"),
    }


def _row(clip_id: str, system: str, seconds: float, scores: dict[str, float]) -> dict[str, Any]:
    """One row of per_file: every metric and region of ``scores`` in table order, NaN for those missing."""
    return {"id": clip_id, "system": system, "seconds": seconds,
            **{key: scores.get(key, math.nan) for key in (*METRICS, *REGIONS)}}


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _safe(uid: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", uid)


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON has no such numbers)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
