import librosa
import numpy as np
import pytest

from wavesynth.audio import MelStats, integrated_loudness, normalize_loudness
from wavesynth.audio.loudness import k_weighting
from wavesynth.audio.stats import STD_FLOOR, merge_all
from wavesynth.audio.trim import trim_silence


def test_streaming_merge_equals_statistics_of_everything():
    rng = np.random.default_rng(0)
    parts = [rng.normal(loc=3.0, scale=2.0, size=(5, n)) for n in (1, 7, 40, 3)]
    merged = merge_all([MelStats.of(p) for p in parts])
    everything = np.concatenate(parts, axis=1)
    assert merged.count == everything.shape[1]
    np.testing.assert_allclose(merged.mean, everything.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(merged.std, everything.std(axis=1), rtol=1e-12)
    np.testing.assert_allclose(merged.normalize(everything).std(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(merged.denormalize(merged.normalize(everything)), everything, rtol=1e-12)
    with pytest.raises(ValueError, match="no features"):
        merge_all([])


def test_constant_bins_get_the_std_floor_and_stats_round_trip(tmp_path):
    stats = MelStats.of(np.full((3, 10), -11.5))
    assert np.all(stats.std == STD_FLOOR)
    stats.save(tmp_path / "stats.json")
    loaded = MelStats.load(tmp_path / "stats.json")
    assert (
        loaded.count == 10 and np.array_equal(loaded.mean, stats.mean) and np.array_equal(loaded.m2, stats.m2)
    )
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a statistics file"):
        MelStats.load(tmp_path / "bad.json")


def sine(freq, rate, seconds, amplitude=1.0):
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def test_k_weighting_at_48k_is_the_bs1770_filter():
    (shelf_b, shelf_a), (pass_b, pass_a) = k_weighting(48000)
    np.testing.assert_allclose(shelf_b, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-10)
    np.testing.assert_allclose(shelf_a, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-10)
    np.testing.assert_allclose(pass_b, [1.0, -2.0, 1.0])
    np.testing.assert_allclose(pass_a, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-10)


def test_loudness_of_a_full_scale_997_hz_sine_is_minus_3_lufs_and_normalisation_hits_its_target():
    assert integrated_loudness(sine(997, 48000, 3.0), 48000) == pytest.approx(-3.01, abs=0.01)
    assert integrated_loudness(sine(997, 16000, 3.0, 0.1), 16000) == pytest.approx(-23.01, abs=0.1)
    quiet = sine(500, 22050, 2.0, 0.01)
    louder = normalize_loudness(quiet, 22050, -20.0)
    assert integrated_loudness(louder, 22050) == pytest.approx(-20.0, abs=1e-6)
    limited = normalize_loudness(quiet, 22050, 0.0)
    assert np.abs(limited).max() == pytest.approx(0.99, rel=1e-6)
    silence = np.zeros(22050, np.float32)
    assert integrated_loudness(silence, 22050) == -np.inf
    assert normalize_loudness(silence, 22050, -20.0) is silence


def test_trim_silence_matches_librosa():
    rng = np.random.default_rng(1)
    for n in (3000, 30000):
        wave = 1e-5 * rng.standard_normal(n).astype(np.float32)
        wave[n // 4 : n // 2] += 0.3 * rng.standard_normal(n // 2 - n // 4).astype(np.float32)
        for top_db in (20, 60):
            expected = librosa.effects.trim(wave, top_db=top_db, frame_length=2048, hop_length=512)[0]
            np.testing.assert_array_equal(trim_silence(wave, top_db), expected)
    assert len(trim_silence(np.zeros(5000, np.float32))) == 5000
