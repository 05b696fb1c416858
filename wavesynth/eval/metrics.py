"""Objective metrics of a synthesised waveform against its reference (copy-synthesis), and of one alone.

The intrusive metrics take two float waveforms at the same rate; the longer one is cut to the shorter one's
length, so a vocoder's output (``frames · hop`` samples) compares with the reference it was analysed from.
The non-intrusive one (``dnsmos``) scores a single waveform, so the reference itself can be scored too.

* ``log_mel_distance`` (dB): on the model's mel filterbank and STFT (``MelConfig``), magnitudes
  M = max(mel, floor) with floor = max(log_floor, 1e-5), per frame the RMS over bins of 20·log10(M̂/M),
  averaged over frames: D = 1/F Σ_t sqrt(1/N Σ_m (20 log10 M̂[m,t] - 20 log10 M[m,t])²).
* ``log_mel_distance_by_region`` (dB): the same D over a part of the spectrogram, to show where a distance
  comes from: the bins centred below / above 1 kHz (the fundamental and lowest harmonics of speech, and
  the formants and noise above them), and the loud / quiet half of the frames (the reference's frame level
  Σ_m M[m,t]² at or above / below its median).
* ``mel_cepstral_distortion`` (dB): mel-cepstra c_1..c_D of the log mel power spectrum
  L = ln max(mel², floor²) by a DCT-II over the N bins, c_d = 1/N Σ_m L_m cos(π d (m + ½) / N), so that
  L_m ≈ c_0 + 2 Σ_d c_d cos(π d (m + ½) / N); then MCD = 10·sqrt(2)/ln 10 · 1/F Σ_t sqrt(Σ_{d=1..D} Δc_d²)
  (c_0, the level, excluded). By Parseval this is the RMS dB distance of the cepstrally smoothed mel power
  spectra, less their level difference. The mel filterbank smooths the spectra first, so values run lower
  than those of SPTK ``mcep`` cepstra: compare MCDs within wavesynth only.
* ``pesq_wideband``: ITU-T P.862.2 wide-band PESQ (MOS-LQO, -0.5 .. 4.64) of the ``pesq`` package on both
  signals resampled to 16 kHz; NaN when PESQ cannot score them (under 1/4 s, or no speech found).
* ``stoi``: short-time objective intelligibility (Taal et al. 2011, ``pystoi``; 0 .. 1); NaN for a silent
  reference (peak below ``SILENCE_DBFS``, -60 dBFS), which pystoi would score 0 whatever the estimate.
* ``dnsmos``: DNSMOS P.835 (Reddy et al. 2022, the ``speechmos`` package on ``onnxruntime``), a non-intrusive
  estimate of the mean opinion score listeners would give in an ITU-T P.835 test, 1 (bad) .. 5 (excellent),
  of one waveform alone (no reference): SIG the speech signal's quality, BAK how unobtrusive the background
  is, OVRL the overall quality. A network trained on such ratings of noisy and denoised speech maps each
  9.01 s window of the 16 kHz signal (windows hopped by 1 s; the last < 2 s of a longer clip may fall in
  none, and speechmos drops the windows starting at 7 .. 23 s, one sample short by a float rounding) to raw
  scores, which fixed quadratics map to the MOS scale; the clip's score is the mean over windows (speechmos
  also runs its P.808 model on each window; that score is not used). speechmos loops a clip shorter than
  9.01 s (appends it to itself until it is long enough), so a short clip is heard with a jump at each join.
  Needs the ``eval`` extra; see ``dnsmos_available``.
* ``real_time_factor``: seconds spent synthesising / seconds of audio produced (< 1: faster than real time).
* Pitch, on frame F0 tracks in Hz with 0 = unvoiced, reference first: ``gross_pitch_error`` (share of frames
  voiced in both with |f̂/f - 1| > 20 %), ``f0_rmse_cents`` (RMS of 1200·log2(f̂/f) over frames voiced in
  both) and ``vuv_error`` (share of frames whose voicing decision differs); NaN when no frame qualifies.
"""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path

import librosa
import numpy as np
import torch

from ..audio import MelConfig, MelExtractor
from ..audio.pitch import track_pitch
from ..errors import WavesynthError

PESQ_RATE = 16000
DNSMOS_RATE = 16000
MCD_ORDER = 24
MCD_CONSTANT = 10 * math.sqrt(2) / math.log(10)
DISTANCE_FLOOR = 1e-5  # magnitude floor of the distances: -100 dB re. a unit mel magnitude
LOW_BAND_HZ = 1000.0  # the split of log_mel_distance_by_region
SILENCE_DBFS = -60.0  # a reference whose peak stays below this is silent: it has no STOI


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 (T,), cut to the common length; ValueError for other shapes or non-finite values."""
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.ndim != 1 or estimate.ndim != 1:
        raise WavesynthError(f"expected two waveforms of shape (T,), got {reference.shape} and "
                             f"{estimate.shape}")
    if not (np.isfinite(reference).all() and np.isfinite(estimate).all()):
        raise WavesynthError("waveforms hold NaN or infinite samples")
    length = min(reference.shape[0], estimate.shape[0])
    return reference[:length], estimate[:length]


def _mel_magnitudes(reference: np.ndarray, estimate: np.ndarray, config: MelConfig) -> torch.Tensor:
    """(2, n_mels, frames) mel magnitudes of both signals, floored at max(log_floor, DISTANCE_FLOOR)."""
    reference, estimate = _pair(reference, estimate)
    extractor = MelExtractor(config)
    with torch.no_grad():
        log_mel = extractor.log_mel(torch.from_numpy(np.stack([reference, estimate])))
    mel = torch.exp(log_mel) if config.log == "ln" else torch.pow(10.0, log_mel)
    return mel.clamp_min(max(config.log_floor, DISTANCE_FLOOR))


def _squared_db_differences(mel: torch.Tensor) -> torch.Tensor:
    """(n_mels, frames) (20 log10 M̂ - 20 log10 M)² of the magnitudes of ``_mel_magnitudes``."""
    return (20 * torch.log10(mel[1] / mel[0])).square()


def _distance(squared_db: torch.Tensor) -> float:
    """D: the mean over frames of the RMS over bins of (bins, frames) squared dB differences."""
    return float(squared_db.mean(0).sqrt().mean()) if squared_db.numel() else math.nan


def log_mel_distance(reference: np.ndarray, estimate: np.ndarray, config: MelConfig) -> float:
    """Mean over frames of the RMS over mel bins of the magnitude difference in dB (see module docstring)."""
    return _distance(_squared_db_differences(_mel_magnitudes(reference, estimate, config)))


def log_mel_distance_by_region(
    reference: np.ndarray, estimate: np.ndarray, config: MelConfig
) -> dict[str, float]:
    """D below / above ``LOW_BAND_HZ`` and on the loud / quiet half of the frames (see module docstring);
    NaN for a region without bins or frames."""
    mel = _mel_magnitudes(reference, estimate, config)
    squared_db = _squared_db_differences(mel)
    centres = librosa.mel_frequencies(config.n_mels + 2, fmin=config.fmin, fmax=config.fmax)[1:-1]
    low = torch.from_numpy(centres < LOW_BAND_HZ)
    level = mel[0].square().sum(0)
    loud = level >= level.median()
    return {
        "below_1khz": _distance(squared_db[low]),
        "above_1khz": _distance(squared_db[~low]),
        "loud_frames": _distance(squared_db[:, loud]),
        "quiet_frames": _distance(squared_db[:, ~loud]),
    }


def mel_cepstrum(log_power: torch.Tensor, order: int = MCD_ORDER) -> torch.Tensor:
    """c_0..c_order (order + 1, frames) of a log mel power spectrum (n_mels, frames):
    c_d = 1/N Σ_m L_m cos(π d (m + ½) / N)."""
    n_mels = log_power.shape[0]
    if not 1 <= order < n_mels:
        raise WavesynthError(f"cepstral order must be in [1, {n_mels - 1}] for {n_mels} mel bins, got "
                             f"{order}")
    d = torch.arange(order + 1, dtype=log_power.dtype)[:, None]
    m = torch.arange(n_mels, dtype=log_power.dtype)[None, :]
    basis = torch.cos(math.pi * d * (m + 0.5) / n_mels) / n_mels
    return basis @ log_power


def mel_cepstral_distortion(
    reference: np.ndarray, estimate: np.ndarray, config: MelConfig, order: int = MCD_ORDER
) -> float:
    """MCD in dB over c_1..c_order: 10·sqrt(2)/ln 10 · mean_t sqrt(Σ_d Δc_d²) (see module docstring)."""
    mel = _mel_magnitudes(reference, estimate, config)
    cepstra = [mel_cepstrum(2 * torch.log(m), order)[1:] for m in mel]
    return float(MCD_CONSTANT * (cepstra[1] - cepstra[0]).square().sum(0).sqrt().mean())


def _at_rate(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return wave
    return librosa.resample(wave, orig_sr=rate, target_sr=target, res_type="soxr_hq")


def pesq_wideband(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Wide-band PESQ (P.862.2) at 16 kHz; NaN when PESQ cannot score the pair (shorter than 1/4 s, or
    no speech found in the reference)."""
    from pesq import BufferTooShortError, NoUtterancesError, pesq

    reference, estimate = _pair(reference, estimate)
    if not reference.any():
        return math.nan
    reference = _at_rate(reference, sample_rate, PESQ_RATE)
    estimate = _at_rate(estimate, sample_rate, PESQ_RATE)
    try:
        return float(pesq(PESQ_RATE, reference, estimate, "wb"))
    except (NoUtterancesError, BufferTooShortError):
        return math.nan


def is_silent(wave: np.ndarray) -> bool:
    """Whether ``wave`` is silent: empty, or no sample reaches ``SILENCE_DBFS`` (re. full scale 1)."""
    wave = np.asarray(wave)
    return wave.size == 0 or float(np.abs(wave).max()) < 10 ** (SILENCE_DBFS / 20)


def stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """STOI in [0, 1] (1: as intelligible as the reference; ``pystoi`` resamples to 10 kHz); NaN for a
    silent reference (``is_silent``: pystoi would score it 0) and when the reference has too few non-silent
    frames (pystoi warns and returns 1e-5 then)."""
    from pystoi import stoi as pystoi_stoi

    reference, estimate = _pair(reference, estimate)
    if is_silent(reference):
        return math.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(pystoi_stoi(reference, estimate, sample_rate, extended=False))
    return math.nan if any("Not enough STFT frames" in str(w.message) for w in caught) else value


def dnsmos_available() -> bool:
    """Whether ``speechmos`` and ``onnxruntime`` (the ``eval`` extra) import, so that ``dnsmos`` can run."""
    try:
        import onnxruntime  # noqa: F401
        import speechmos.dnsmos  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _dnsmos_model():
    """speechmos's non-personalised DNSMOS on onnxruntime sessions limited to torch's thread count (the
    sessions would otherwise take every core, whatever OMP_NUM_THREADS says)."""
    import onnxruntime
    from speechmos import dnsmos as speechmos_dnsmos

    models = Path(speechmos_dnsmos.__file__).parent / "dnsmos_models"

    class ThreadLimitedDNSMOS(speechmos_dnsmos.DNSMOS):
        def __init__(self, primary_model_path: str, p808_model_path: str) -> None:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.inter_op_num_threads = 1
            providers = ["CPUExecutionProvider"]
            self.primary_model_path = primary_model_path
            self.onnx_sess = onnxruntime.InferenceSession(primary_model_path, options, providers=providers)
            self.p808_onnx_sess = onnxruntime.InferenceSession(p808_model_path, options, providers=providers)

    return ThreadLimitedDNSMOS(str(models / "sig_bak_ovr.onnx"), str(models / "model_v8.onnx"))


def dnsmos(wave: np.ndarray, sample_rate: int) -> dict[str, float]:
    """DNSMOS P.835 ``dnsmos_ovrl``, ``dnsmos_sig`` and ``dnsmos_bak`` (1 .. 5) of one waveform (T,) at
    ``sample_rate``, resampled to 16 kHz and clipped to [-1, 1]; NaN for an empty one (module docstring)."""
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1:
        raise WavesynthError(f"expected a waveform of shape (T,), got {wave.shape}")
    if not np.isfinite(wave).all():
        raise WavesynthError("waveform holds NaN or infinite samples")
    wave = np.clip(_at_rate(wave, sample_rate, DNSMOS_RATE), -1.0, 1.0)
    if wave.size == 0:  # speechmos would loop it for ever
        return dict.fromkeys(("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"), math.nan)
    scores = _dnsmos_model()(wave, DNSMOS_RATE, False)
    return {"dnsmos_ovrl": float(scores["ovrl_mos"]), "dnsmos_sig": float(scores["sig_mos"]),
            "dnsmos_bak": float(scores["bak_mos"])}


def real_time_factor(seconds_spent: float, samples: int, sample_rate: int) -> float:
    """Synthesis time / duration of the audio made (``samples`` at ``sample_rate``)."""
    if samples <= 0:
        raise ValueError("real-time factor of an empty output")
    return seconds_spent / (samples / sample_rate)


# ------------------------------------------------------------------------------------------------ pitch
#
# F0 tracks are numpy arrays of frame F0 in Hz with 0 (or any value <= 0) where unvoiced, the reference
# (e.g. a tracker's labels) first; both have the same shape. A frame is "voiced in both" when both F0s are
# > 0. Each metric is NaN when no frame qualifies.


def _f0_pair(f0_ref: np.ndarray, f0_est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as flat float64 arrays; ValueError for different shapes or NaN/infinite values."""
    f0_ref = np.asarray(f0_ref, dtype=np.float64)
    f0_est = np.asarray(f0_est, dtype=np.float64)
    if f0_ref.shape != f0_est.shape:
        raise WavesynthError(f"F0 tracks of different shapes: {f0_ref.shape} and {f0_est.shape}")
    if not (np.isfinite(f0_ref).all() and np.isfinite(f0_est).all()):
        raise WavesynthError("F0 tracks hold NaN or infinite values (use 0 for unvoiced frames)")
    return f0_ref.ravel(), f0_est.ravel()


def tracked_f0(
    reference: np.ndarray, estimate: np.ndarray, config: MelConfig
) -> tuple[np.ndarray, np.ndarray]:
    """pyin's frame F0 (``audio.pitch.track_pitch``, 0 = unvoiced) of two waveforms cut to their common
    length, for the F0 metrics below."""
    reference, estimate = _pair(reference, estimate)
    return track_pitch(reference, config).f0, track_pitch(estimate, config).f0


def gross_pitch_error(f0_ref: np.ndarray, f0_est: np.ndarray, threshold: float = 0.2) -> float:
    """Share of the frames voiced in both whose estimate is off by more than ``threshold`` (relative):
    |f0_est / f0_ref - 1| > threshold (0.2 is the usual 20 %)."""
    f0_ref, f0_est = _f0_pair(f0_ref, f0_est)
    both = (f0_ref > 0) & (f0_est > 0)
    if not both.any():
        return math.nan
    return float(np.mean(np.abs(f0_est[both] / f0_ref[both] - 1) > threshold))


def f0_rmse_cents(f0_ref: np.ndarray, f0_est: np.ndarray) -> float:
    """RMS of 1200·log2(f0_est / f0_ref) in cents over the frames voiced in both."""
    f0_ref, f0_est = _f0_pair(f0_ref, f0_est)
    both = (f0_ref > 0) & (f0_est > 0)
    if not both.any():
        return math.nan
    return float(np.sqrt(np.mean((1200 * np.log2(f0_est[both] / f0_ref[both])) ** 2)))


def vuv_error(f0_ref: np.ndarray, f0_est: np.ndarray) -> float:
    """Share of frames whose voicing decision (F0 > 0) differs between reference and estimate."""
    f0_ref, f0_est = _f0_pair(f0_ref, f0_est)
    if f0_ref.size == 0:
        return math.nan
    return float(np.mean((f0_ref > 0) != (f0_est > 0)))
