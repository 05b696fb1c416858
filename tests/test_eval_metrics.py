"""Metrics on known signals, the Griffin-Lim baseline on a real clip, and the report files."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
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
from wavesynth.eval.metrics import dnsmos, dnsmos_available, mel_cepstrum
from wavesynth.eval.report import DNSMOS_NOTICE, SYSTEMS, Clip, collect_clips, evaluate

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


def test_dnsmos_scores_clean_speech_above_the_same_speech_in_noise():
    """minute.flac (0.68 s), looped by speechmos to 10.88 s, is one 9.01 s window: a fast test."""
    pytest.importorskip("speechmos")
    rate = PRESET.sample_rate
    speech = load_audio(DATA / "minute.flac", rate)
    clean, in_noise = dnsmos(speech, rate), dnsmos(noisy(speech, 0), rate)
    assert set(clean) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"}
    assert all(1 <= v <= 5 for v in [*clean.values(), *in_noise.values()])
    assert clean["dnsmos_ovrl"] > in_noise["dnsmos_ovrl"] + 0.8  # measured: 2.4 against 1.3
    assert clean["dnsmos_bak"] > in_noise["dnsmos_bak"] + 1.5  # the noise is in the background: 3.8, 1.3
    # any rate (resampled to 16 kHz); samples beyond [-1, 1] clipped rather than refused
    at_22k = dnsmos(load_audio(DATA / "minute.flac", 22050), 22050)
    assert at_22k["dnsmos_ovrl"] == pytest.approx(clean["dnsmos_ovrl"], abs=0.25)  # measured: 0.10 apart
    assert 1 <= dnsmos(4 * speech, rate)["dnsmos_ovrl"] <= 5
    assert all(math.isnan(v) for v in dnsmos(np.zeros(0), rate).values())
    with pytest.raises(ValueError, match="shape"):
        dnsmos(speech[None], rate)


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


def table_rows(report: str) -> dict[str, list[str]]:
    """The cells of the first table of report.md by system."""
    rows = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] in SYSTEMS and cells[0] not in rows:
            rows[cells[0]] = cells[1:]
    return rows


def test_report_writes_table_json_csv_and_figures(tmp_path):
    """The model (here the clip itself), Griffin-Lim of 48 and of 4 iterations, and the real clip, which only
    DNSMOS scores: a perfect model's DNSMOS is the clip's."""
    pytest.importorskip("speechmos")
    lines = []
    result = evaluate(Perfect(), [DATA / "minute.flac"], tmp_path, figures=1, progress=lines.append)
    summary = result["summary"]
    model, baseline, few, real = (summary[system] for system in SYSTEMS)
    assert model["log_mel_distance_db"]["mean"] == 0 and model["pesq_wb"]["mean"] > 4.5
    assert model["log_mel_db_below_1khz"]["mean"] == 0 and baseline["log_mel_db_quiet_frames"]["mean"] > 0
    assert baseline["log_mel_distance_db"]["mean"] > 0 and baseline["stoi"]["n"] == 1
    assert few["log_mel_distance_db"]["mean"] > baseline["log_mel_distance_db"]["mean"]  # fewer iterations
    assert few["stoi"]["mean"] < baseline["stoi"]["mean"]  # (their speeds are not compared: no timed tests)
    assert few["rtf"]["n"] == baseline["rtf"]["n"] == 1 and few["rtf"]["mean"] > 0
    for key in ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"):
        assert 1 <= real[key]["mean"] <= 5 and model[key]["mean"] == pytest.approx(real[key]["mean"])
    assert all(real[key]["n"] == 0 for key in ("log_mel_distance_db", "pesq_wb", "stoi", "vuv_error", "rtf",
                                               "log_mel_db_loud_frames"))
    assert len(lines) == 1 and lines[0].startswith("minute: PESQ") and "DNSMOS OVRL" in lines[0]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["files"] == 1 and [r["system"] for r in saved["per_file"]] == list(SYSTEMS)
    assert saved["dnsmos"] is True and saved["per_file"][-1]["stoi"] is None  # NaN in JSON
    report = (tmp_path / "report.md").read_text()
    rows = table_rows(report)
    assert list(rows) == list(SYSTEMS) and report.count("| griffin-lim-4 |") == 2
    assert rows["real"][:4] == ["n/a"] * 4 and rows["real"][-1] == "n/a" and "n/a" not in rows["real"][4:7]
    assert "n/a" not in rows["model"] + rows["griffin-lim-4"] and DNSMOS_NOTICE not in report
    assert "| bins below 1 kHz |" in report and "- DNSMOS: DNSMOS P.835" in report
    assert "![spectrograms_minute.png](spectrograms_minute.png)" in report
    assert (tmp_path / "spectrograms_minute.png").stat().st_size > 10_000
    assert (tmp_path / "per_file.csv").read_text().startswith("id,system,seconds,")
    with pytest.raises(ValueError, match="no clips"):
        evaluate(Perfect(), [], tmp_path)


def test_report_without_speechmos_leaves_dnsmos_out_with_one_notice(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "speechmos", None)  # import speechmos now fails
    monkeypatch.setitem(sys.modules, "speechmos.dnsmos", None)
    assert not dnsmos_available()
    clips = [DATA / "minute.flac", DATA / "second.flac"]
    result = evaluate(Perfect(), clips, tmp_path / "quiet", figures=0)
    assert capsys.readouterr().err.count(DNSMOS_NOTICE) == 1  # once, not per clip
    assert result["dnsmos"] is False and result["summary"]["model"]["pesq_wb"]["n"] == 2
    assert all(result["summary"][system]["dnsmos_ovrl"]["n"] == 0 for system in SYSTEMS)
    report = (tmp_path / "quiet" / "report.md").read_text()
    assert report.count(DNSMOS_NOTICE) == 1
    rows = table_rows(report)
    assert list(rows) == list(SYSTEMS) and rows["real"] == ["n/a"] * 10
    assert all(rows[system][4:7] == ["n/a"] * 3 for system in SYSTEMS)
    lines = []
    evaluate(Perfect(), clips[:1], tmp_path / "told", figures=0, progress=lines.append)
    assert lines[0] == DNSMOS_NOTICE and len(lines) == 2 and "DNSMOS" not in lines[1]


@pytest.fixture
def without_dnsmos(monkeypatch):
    """DNSMOS left out (faster; its notice goes to stderr)."""
    monkeypatch.setitem(sys.modules, "speechmos", None)
    monkeypatch.setitem(sys.modules, "speechmos.dnsmos", None)


def test_unreadable_clips_are_skipped_named_and_listed(tmp_path, without_dnsmos):
    """A corrupt audio file and damaged cached waveforms (truncated, empty) among good clips."""
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    truncated, empty = tmp_path / "truncated.npy", tmp_path / "empty.npy"
    np.save(truncated, np.zeros(4096, np.float32))
    truncated.write_bytes(truncated.read_bytes()[:-100])
    empty.write_bytes(b"")
    clips = [Clip("corrupt", corrupt), Clip("minute", DATA / "minute.flac"),
             Clip("truncated", truncated, 16000), Clip("empty", empty, 16000)]
    out = tmp_path / "report"
    with pytest.warns(UserWarning) as caught:
        result = evaluate(Perfect(), clips, out, figures=0)
    messages = [str(w.message) for w in caught]
    for uid, path in (("corrupt", corrupt), ("truncated", truncated), ("empty", empty)):
        assert sum(m.startswith(f"skipped clip {uid}: {path}: ") and "\n" not in m for m in messages) == 1
    assert result["files"] == 1 and [s["id"] for s in result["skipped"]] == ["corrupt", "truncated", "empty"]
    assert "not a readable audio file" in result["skipped"][0]["reason"]
    assert all("damaged cache file" in s["reason"] for s in result["skipped"][1:])
    assert json.loads((out / "metrics.json").read_text())["skipped"] == result["skipped"]
    assert {line.split(",")[0] for line in (out / "per_file.csv").read_text().splitlines()[1:]} == {"minute"}
    report = (out / "report.md").read_text()
    assert "1 clips, " in report and "3 clips could not be read and are skipped" in report
    assert f"- `truncated`: {truncated}: damaged cache file" in report
    with pytest.raises(ValueError, match=r"^no clip could be read: .*corrupt.wav: not a readable audio file"
                                         r".* \(and 1 more\)$"), pytest.warns(UserWarning):
        evaluate(Perfect(), clips[:1] + clips[3:], tmp_path / "none", figures=0)


def test_a_silent_reference_has_no_stoi_and_the_report_says_so(tmp_path, speech, without_dnsmos):
    rate = PRESET.sample_rate
    assert math.isnan(stoi(np.zeros(rate), speech[:rate], rate))
    assert math.isnan(stoi(1e-5 * noisy(np.ones(rate, np.float32), 0), speech[:rate], rate))
    assert stoi(speech, speech, rate) > 0.99
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(rate // 2, np.float32), rate)
    result = evaluate(Perfect(), [DATA / "minute.flac", silence], tmp_path / "report", figures=0)
    assert result["silent_references"] == ["silence"]
    assert all(result["summary"][system]["stoi"]["n"] == 1 for system in SYSTEMS[:3])
    assert result["summary"]["model"]["stoi"]["mean"] == pytest.approx(1.0, abs=1e-6)
    report = (tmp_path / "report" / "report.md").read_text()
    assert "reference is silent (peak below -60 dBFS; pystoi would score it 0): `silence`." in report


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
