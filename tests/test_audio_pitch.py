import numpy as np
import pytest

from wavesynth.audio import get_preset
from wavesynth.audio.pitch import PitchTrack, track_pitch


def glide(config, seconds=1.0, lo=100.0, hi=400.0):
    """A harmonic series whose F0 rises exponentially from lo to hi, and its true F0 per sample."""
    n = int(seconds * config.sample_rate)
    f = np.geomspace(lo, hi, n)
    phase = np.cumsum(f / config.sample_rate)
    wave = sum(np.sin(2 * np.pi * k * phase) / k for k in range(1, 6))
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32), f


@pytest.mark.parametrize("preset", ["hifigan-22k", "speechbrain-16k"])  # centres n·hop + hop/2 and n·hop
def test_pyin_reports_f0_at_the_mel_frame_centres(preset):
    config = get_preset(preset)
    wave, f = glide(config)
    track = track_pitch(wave, config, "pyin")
    assert track.frames == config.frames(len(wave))
    centres = (np.arange(track.frames) * config.hop_length + config.frame_offset).astype(int)
    inner = slice(4, track.frames - 4)  # away from the edges, where the window runs off the signal
    assert (track.voiced[inner] == 1).all()
    cents = 1200 * np.log2(track.f0[inner] / f[centres[inner]])
    # the glide climbs 24 cents per millisecond: a frame off by half a hop (5.8 or 8 ms) is > 100 cents off
    assert abs(np.median(cents)) < 10 and np.percentile(np.abs(cents), 90) < 30


def test_silence_is_unvoiced_with_zero_f0():
    config = get_preset("hifigan-22k")
    wave, _ = glide(config, 0.5)
    wave = np.concatenate([np.zeros(11025, np.float32), wave])
    track = track_pitch(wave, config, "pyin")
    silent = slice(0, 11025 // 256 - 4)
    assert (track.voiced[silent] == 0).all() and (track.f0[silent] == 0).all()
    assert track.voiced_prob[silent].max() < track.voiced_prob[-20:-4].min()
    assert (track.f0[track.voiced == 0] == 0).all() and (track.f0[track.voiced == 1] > 0).all()


def test_crepe_tracks_the_same_glide():
    config = get_preset("hifigan-22k")
    wave, f = glide(config, 0.5, 150.0, 300.0)
    track = track_pitch(wave, config, "crepe-tiny")
    centres = (np.arange(track.frames) * config.hop_length + config.frame_offset).astype(int)
    inner = slice(4, track.frames - 4)
    assert (track.voiced[inner] == 1).all()
    assert np.percentile(np.abs(1200 * np.log2(track.f0[inner] / f[centres[inner]])), 90) < 50


def test_a_track_round_trips_through_its_cache_array_and_bad_input_is_one_line():
    track = PitchTrack(*(np.array(row, np.float32) for row in ([0, 110], [0, 1], [0.2, 0.9])))
    again = PitchTrack.from_array(track.to_array())
    assert all(np.array_equal(a, b) for a, b in zip(vars(track).values(), vars(again).values(), strict=True))
    config = get_preset("hifigan-22k")
    with pytest.raises(ValueError, match="unknown pitch tracker 'yin'"):
        track_pitch(np.zeros(4096, np.float32), config, "yin")
    with pytest.raises(ValueError, match=r"mono wave \(T,\)"):
        track_pitch(np.zeros((2, 4096), np.float32), config)
    with pytest.raises(ValueError, match=r"\(3, frames\) array"):
        PitchTrack.from_array(np.zeros((2, 5)))
