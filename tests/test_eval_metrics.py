"""Metrics on known signals, the Griffin-Lim baseline on a real clip, and the report files."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from wavesynth.audio import MelExtractor, MelStats, get_preset, load_audio
from wavesynth.eval import (
    griffin_lim,
    log_mel_distance,
    log_mel_distance_by_region,
    mel_cepstral_distortion,
    pesq_wideband,
    real_time_factor,
    stoi,
)
from wavesynth.eval.metrics import mel_cepstrum
from wavesynth.eval.report import collect_clips, evaluate

DATA = Path(__file__).parent / "data"
PRESET = get_preset("speechbrain-16k")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_audio(DATA / "second.flac", PRESET.sample_rate)


def noisy(wave: np.ndarray, snr_db: float) -> np.ndarray:
    noise = np.random.default_rng(0).standard_normal(wave.shape)
    noise *= np.sqrt(np.mean(wave**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
    return (wave + noise).astype(np.float32)


def all_metrics(reference, estimate):
    rate = PRESET.sample_rate
    return (
        log_mel_distance(reference, estimate, PRESET),
        mel_cepstral_distortion(reference, estimate, PRESET),
        pesq_wideband(reference, estimate, rate),
        stoi(reference, estimate, rate),
    )


def test_identical_signals_score_perfectly(speech):
    lmd, mcd, pesq, intelligibility = all_metrics(speech, speech)
    assert lmd == 0 and mcd == 0
    assert pesq > 4.5
    assert intelligibility == pytest.approx(1.0, abs=1e-6)


def test_noise_degrades_every_metric_monotonically(speech):
    scores = np.array([all_metrics(speech, noisy(speech, snr)) for snr in (30, 15, 0)])
    lmd, mcd, pesq, intelligibility = scores.T
    assert np.all(np.diff(lmd) > 0) and np.all(np.diff(mcd) > 0)
    assert np.all(np.diff(pesq) < 0) and np.all(np.diff(intelligibility) < 0)
    assert lmd[0] > 0.5 and pesq[-1] < 2


def test_the_distance_by_region_finds_where_two_signals_differ(speech):
    """Halving everything below 1 kHz (-6.02 dB) shows in those bins, not above; a noise floor shows more in
    the quiet half of the frames than in the loud half."""
    spectrum = np.fft.rfft(speech)
    spectrum[np.fft.rfftfreq(speech.shape[0], 1 / PRESET.sample_rate) < 1000] *= 0.5
    quieter_lows = np.fft.irfft(spectrum, speech.shape[0]).astype(np.float32)
    regions = log_mel_distance_by_region(speech, quieter_lows, PRESET)
    assert regions["below_1khz"] == pytest.approx(6.02, abs=0.3) and regions["above_1khz"] < 1
    assert regions["loud_frames"] == pytest.approx(regions["quiet_frames"], rel=0.1)
    regions = log_mel_distance_by_region(speech, noisy(speech, 30), PRESET)
    assert regions["quiet_frames"] > regions["loud_frames"] > 0
    assert set(log_mel_distance_by_region(speech, speech, PRESET).values()) == {0}


def test_lengths_are_cut_to_the_shorter_signal_and_bad_shapes_rejected(speech):
    padded = np.concatenate([speech, np.zeros(300, np.float32)])
    assert log_mel_distance(speech, padded, PRESET) == 0
    with pytest.raises(ValueError, match="shape"):
        log_mel_distance(speech[None], speech, PRESET)
    with pytest.raises(ValueError, match="NaN"):
        stoi(speech, np.full_like(speech, np.nan), PRESET.sample_rate)


def test_pesq_and_stoi_give_nan_when_they_cannot_score(speech):
    short = speech[:2000]
    assert math.isnan(pesq_wideband(short, short, PRESET.sample_rate))
    assert math.isnan(stoi(short[:1000], short[:1000], PRESET.sample_rate))
    assert math.isnan(pesq_wideband(np.zeros(16000), speech[:16000], PRESET.sample_rate))


def test_mel_cepstrum_recovers_cosine_coefficients():
    n_mels, m = 80, torch.arange(80, dtype=torch.float64)
    log_power = 1.5 + 2 * 0.3 * torch.cos(math.pi * 3 * (m + 0.5) / n_mels)
    c = mel_cepstrum(log_power[:, None], order=24)[:, 0]
    expected = torch.zeros(25, dtype=torch.float64)
    expected[0], expected[3] = 1.5, 0.3
    torch.testing.assert_close(c, expected)


def test_real_time_factor():
    assert real_time_factor(0.5, 16000, 16000) == 0.5
    with pytest.raises(ValueError):
        real_time_factor(1.0, 0, 16000)


def test_griffin_lim_of_a_real_clip_is_close_and_aligned(speech):
    mel = MelExtractor(PRESET)(torch.from_numpy(speech)).numpy()
    wave = griffin_lim(mel, PRESET, iterations=32)
    assert wave.shape == (mel.shape[1] * PRESET.hop_length,) and wave.dtype == np.float32
    distance = log_mel_distance(speech, wave, PRESET)
    assert distance < 3.0  # dB; a random signal is tens of dB away
    assert distance < log_mel_distance(speech, np.roll(wave, PRESET.hop_length // 2), PRESET)
    assert stoi(speech, wave, PRESET.sample_rate) > 0.85


def test_griffin_lim_undoes_normalisation():
    config = get_preset("pwg-22k")
    wave = load_audio(DATA / "second.flac", config.sample_rate)
    log_mel = MelExtractor(config).log_mel(torch.from_numpy(wave)).numpy()
    stats = MelStats.of(log_mel)
    with pytest.raises(ValueError, match="statistics"):
        griffin_lim(stats.normalize(log_mel), config)
    out = griffin_lim(stats.normalize(log_mel), config, stats, iterations=16)
    assert log_mel_distance(wave, out, config) < 4.0


class Perfect:
    """A stand-in vocoder that returns the recording the mel came from."""

    config = PRESET
    sample_rate = PRESET.sample_rate

    def mel(self, wave):
        self.wave = wave
        return MelExtractor(PRESET)(torch.from_numpy(wave)).numpy()

    def synthesize(self, mel):
        return self.wave


def test_report_writes_table_json_csv_and_figures(tmp_path):
    result = evaluate(Perfect(), [DATA / "second.flac"], tmp_path, figures=1)
    model, baseline = result["summary"]["model"], result["summary"]["griffin-lim"]
    assert model["log_mel_distance_db"]["mean"] == 0 and model["pesq_wb"]["mean"] > 4.5
    assert model["log_mel_db_below_1khz"]["mean"] == 0 and baseline["log_mel_db_quiet_frames"]["mean"] > 0
    assert baseline["log_mel_distance_db"]["mean"] > 0 and baseline["stoi"]["n"] == 1
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["files"] == 1 and len(saved["per_file"]) == 2
    report = (tmp_path / "report.md").read_text()
    assert report.count("| griffin-lim |") == 2 and "| bins below 1 kHz |" in report
    assert "![spectrograms_second.png](spectrograms_second.png)" in report
    assert (tmp_path / "spectrograms_second.png").stat().st_size > 10_000
    assert (tmp_path / "per_file.csv").read_text().startswith("id,system,seconds,")
    with pytest.raises(ValueError, match="no clips"):
        evaluate(Perfect(), [], tmp_path)


def test_clips_come_from_a_folder_a_file_or_a_cache_validation_split(tmp_path):
    assert [c.id for c in collect_clips(DATA)] == ["minute", "second"]
    assert collect_clips(DATA / "second.flac")[0].rate is None
    cache = tmp_path / "cache"
    (cache / "wavs").mkdir(parents=True)
    np.save(cache / "wavs" / "b.npy", np.zeros(512, np.float32))
    rows = [{"id": uid, "split": split, "wave": f"wavs/{uid}.npy"}
            for uid, split in (("a", "train"), ("b", "valid"))]
    (cache / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (cache / "preset.json").write_text(get_preset("hifigan-22k").to_json())
    (cache / "speakers.json").write_text("[]")
    MelStats.of(np.zeros((80, 2))).save(cache / "stats.json")
    (clip,) = collect_clips(cache)
    assert (clip.id, clip.rate) == ("b", 22050) and clip.load(16000).shape == (372,)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        collect_clips(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        collect_clips(tmp_path / "absent")


# ------------------------------------------------------------------------------------------------ pitch

def test_pitch_metrics_by_hand():
    from wavesynth.eval import f0_rmse_cents, gross_pitch_error, vuv_error

    # frames voiced in both: 0 (+100 cents, ratio 1.059), 1 (+400 cents, 1.260: gross), 5 (-200 cents, 0.891)
    # voicing differs in frames 2 and 3 of 7
    f0_ref = np.array([100.0, 200.0, 0.0, 300.0, 0.0, 400.0, 0.0])
    f0_est = np.array([100 * 2 ** (100 / 1200), 200 * 2 ** (400 / 1200), 120.0, 0.0, 0.0,
                       400 * 2 ** (-200 / 1200), 0.0])
    assert gross_pitch_error(f0_ref, f0_est) == pytest.approx(1 / 3)
    assert gross_pitch_error(f0_ref, f0_est, threshold=0.05) == pytest.approx(1.0)
    assert gross_pitch_error(f0_ref, f0_est, threshold=0.3) == 0.0
    assert f0_rmse_cents(f0_ref, f0_est) == pytest.approx(math.sqrt((100**2 + 400**2 + 200**2) / 3))
    assert vuv_error(f0_ref, f0_est) == pytest.approx(2 / 7)
    # symmetric in the cents, any shape, negative values are unvoiced
    assert f0_rmse_cents(f0_est, f0_ref) == pytest.approx(f0_rmse_cents(f0_ref, f0_est))
    negative = np.where(f0_est > 0, f0_est, -1.0)
    assert vuv_error(f0_ref.reshape(1, 7), negative.reshape(1, 7)) == pytest.approx(2 / 7)
    assert f0_rmse_cents(np.full(4, 220.0), np.full(4, 220.0)) == 0.0


def test_pitch_metrics_nan_and_errors():
    from wavesynth.eval import f0_rmse_cents, gross_pitch_error, vuv_error

    ref, est = np.array([100.0, 0.0]), np.array([0.0, 100.0])  # never voiced in both
    assert math.isnan(gross_pitch_error(ref, est)) and math.isnan(f0_rmse_cents(ref, est))
    assert vuv_error(ref, est) == 1.0
    assert math.isnan(vuv_error(np.zeros(0), np.zeros(0)))
    with pytest.raises(ValueError, match="different shapes"):
        gross_pitch_error(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="NaN or infinite"):
        f0_rmse_cents(np.array([100.0, np.nan]), np.ones(2))
