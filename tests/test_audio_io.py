from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavesynth.audio import load_audio, save_audio

DATA = Path(__file__).parent / "data"


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "subtype", "atol"),
    [
        ("a.wav", "PCM_16", 2**-15),
        ("a.flac", "PCM_24", 2**-23),
        ("a.wav", "PCM_32", 1e-7),
        ("a.wav", "FLOAT", 0),
        ("a.ogg", "VORBIS", 0.05),
    ],
)
def test_formats_read_back_as_float32_in_range(tmp_path, name, subtype, atol):
    wave = sine(440, 16000, 0.5)
    sf.write(tmp_path / name, wave, 16000, subtype=subtype)
    loaded = load_audio(tmp_path / name)
    assert loaded.dtype == np.float32 and loaded.shape == wave.shape
    np.testing.assert_allclose(loaded, wave, atol=atol + 1e-7)


def test_save_audio_round_trip_and_stereo_is_mixed_down(tmp_path):
    wave = sine(300, 22050, 0.3)
    save_audio(tmp_path / "a.wav", wave, 22050)
    assert sf.info(tmp_path / "a.wav").subtype == "PCM_16"
    np.testing.assert_allclose(load_audio(tmp_path / "a.wav"), wave, atol=2**-15)
    sf.write(tmp_path / "stereo.wav", np.stack([wave, 0 * wave], axis=1), 22050, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "stereo.wav"), wave / 2, atol=1e-7)


def test_resampling_keeps_frequency_level_and_duration(tmp_path):
    sf.write(tmp_path / "a.wav", sine(1000, 44100, 1.0), 44100, subtype="FLOAT")
    for rate in (22050, 16000):
        wave = load_audio(tmp_path / "a.wav", sample_rate=rate)
        assert len(wave) == rate
        spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
        assert abs(np.argmax(spectrum) * rate / len(wave) - 1000) <= 1
        assert abs(np.sqrt(np.mean(wave[2000:-2000] ** 2)) - 0.5 / np.sqrt(2)) < 1e-3


def test_full_scale_resampling_stays_in_range(tmp_path):
    square = np.sign(sine(1000, 44100, 0.2, 1.0))
    sf.write(tmp_path / "a.wav", square, 44100, subtype="FLOAT")
    wave = load_audio(tmp_path / "a.wav", 16000)
    assert np.abs(wave).max() <= 1.0


def test_committed_clip_reads_as_speech():
    wave = load_audio(DATA / "minute.flac", 22050)
    assert wave.dtype == np.float32 and 0.5 < len(wave) / 22050 < 1 and 0.1 < np.abs(wave).max() <= 1


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.wav", "no such audio file"),
        (lambda d: write_bytes(d / "empty.wav", b""), "not a readable audio file"),
        (
            lambda d: write_bytes(d / "junk.flac", b"this is not audio at all" * 10),
            "not a readable audio file",
        ),
        (lambda d: write_bytes(d / "notes.txt", b"hello"), "unsupported file type '.txt'"),
    ],
)
def test_bad_files_raise_one_clear_line_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as info:
        load_audio(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_bad_sample_values_raise(tmp_path):
    nan = sine(440, 16000, 0.1)
    nan[10:20] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match="nan.wav: the file holds NaN"):
        load_audio(tmp_path / "nan.wav")
    sf.write(tmp_path / "loud.wav", 3 * sine(440, 16000, 0.1), 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match="loud.wav: samples exceed"):
        load_audio(tmp_path / "loud.wav")
    sf.write(tmp_path / "none.wav", np.zeros(0, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match="none.wav: the file holds no samples"):
        load_audio(tmp_path / "none.wav")
    sf.write(tmp_path / "short.wav", sine(440, 16000, 0.01), 16000)
    with pytest.raises(ValueError, match=r"short.wav: too short \(160 samples at 16000 Hz, at least 256"):
        load_audio(tmp_path / "short.wav", min_samples=256)


def test_save_audio_rejects_bad_waves(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        save_audio(tmp_path / "x.wav", np.full(100, np.nan, np.float32), 16000)
    with pytest.raises(ValueError, match="mono"):
        save_audio(tmp_path / "x.wav", np.zeros((2, 100), np.float32), 16000)
