"""A pitch-aware model behind the Vocoder: its folder carries the pitch predictor, F0 given or predicted,
pitch_scale, chunked synthesis with the excitation, and one-line errors for F0 that does not fit."""


import numpy as np
import pytest
import torch
from vocoder_checks import DATA, PRESET, TINY_STUDENT, fake_checkpoint

from wavesynth import vocoder as vocoder_module
from wavesynth.audio import load_audio
from wavesynth.cli import main
from wavesynth.parallel import ParallelWaveNet, StudentConfig
from wavesynth.pitch import PitchPredictor, PitchPredictorConfig
from wavesynth.pretrained import export_pretrained
from wavesynth.vocoder import Vocoder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("sine-student")
    student = ParallelWaveNet(StudentConfig(**TINY_STUDENT, excitation="sine", harmonics=4))
    checkpoint = fake_checkpoint(root / "step-3.pt", student)
    predictor = PitchPredictor(PitchPredictorConfig(channels=8, layers=2), PRESET).eval()
    predictor.save(root / "pitch")
    return export_pretrained(checkpoint, root / "sine-student", pitch=root / "pitch")


@pytest.fixture(scope="module")
def voc(folder):
    return Vocoder.from_pretrained(folder, device="cpu")


@pytest.fixture(scope="module")
def mel(voc):
    return voc.mel(load_audio(DATA / "second.flac", voc.sample_rate))[:, :30]


def test_the_folder_carries_the_predictor_and_f0_defaults_to_its_prediction(folder, voc, mel):
    assert (folder / "pitch.json").is_file() and (folder / "pitch.pt").is_file()
    f0 = voc.pitch(mel)
    expected = PitchPredictor.load(folder).predict(torch.from_numpy(mel))[0].numpy()
    assert f0.shape == (30,) and f0.dtype == np.float32 and (f0 >= 0).all()
    np.testing.assert_array_equal(f0, expected)
    np.testing.assert_array_equal(voc.synthesize(mel), voc.synthesize(mel, f0=f0))


def test_given_f0_and_pitch_scale_drive_the_excitation(voc, mel):
    f0 = np.where(np.arange(30) % 10 < 7, 120.0, 0.0).astype(np.float32)
    low, high = voc.synthesize(mel, f0=f0), voc.synthesize(mel, f0=f0, pitch_scale=1.5)
    np.testing.assert_allclose(high, voc.synthesize(mel, f0=1.5 * f0), atol=1e-6)
    assert np.abs(high - low).max() > 1e-4  # the F0 reaches the output (weights at their random init)
    batch = voc.synthesize(np.stack([mel, mel]), f0=np.stack([f0, 1.5 * f0]))
    np.testing.assert_allclose(batch, np.stack([low, high]), atol=1e-5)


def test_chunked_synthesis_with_the_excitation_equals_unchunked(voc, mel):
    f0 = np.linspace(90, 250, 30).astype(np.float32)
    whole = voc.synthesize(mel, f0=f0)
    voc.chunk_frames = 3
    try:
        chunked = voc.synthesize(mel, f0=f0)
    finally:
        voc.chunk_frames = vocoder_module.CHUNK_FRAMES
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


@pytest.mark.parametrize(
    ("f0", "scale", "message"),
    [
        (np.zeros(29), 1.0, r"f0 must be \(frames,\) = \(30,\) like its mel, got \(29,\)"),
        (np.full(30, np.nan), 1.0, "NaN"),
        (np.full(30, -5.0), 1.0, "negative values"),
        (np.full(30, 6000.0), 1.5, "at or above Nyquist"),
        (np.full(30, 100.0), 0.0, "pitch_scale must be a positive number"),
    ],
)
def test_f0_that_does_not_fit_gets_one_line(voc, mel, f0, scale, message):
    with pytest.raises(ValueError, match=message) as error:
        voc.synthesize(mel, f0=f0, pitch_scale=scale)
    assert "\n" not in str(error.value)


def test_models_without_excitation_or_predictor_say_so(folder, voc, mel, tmp_path):
    checkpoint = fake_checkpoint(tmp_path / "plain.pt", ParallelWaveNet(StudentConfig(**TINY_STUDENT)))
    plain = Vocoder.from_pretrained(checkpoint, device="cpu")
    with pytest.raises(ValueError, match="has no excitation"):
        plain.synthesize(mel, f0=np.zeros(30))
    with pytest.raises(ValueError, match="has no excitation"):
        plain.synthesize(mel, pitch_scale=2.0)
    with pytest.raises(ValueError, match="takes no pitch predictor"):
        export_pretrained(tmp_path / "plain.pt", tmp_path / "plain", pitch=folder)
    bare = Vocoder.from_pretrained(folder.parent / "step-3.pt", device="cpu")  # a checkpoint: no predictor
    with pytest.raises(ValueError, match="has no pitch predictor"):
        bare.synthesize(mel)
    assert bare.synthesize(mel, f0=voc.pitch(mel)).shape == (30 * PRESET.hop_length,)


def test_cli_synthesize_with_f0_and_pitch_scale_and_export_with_pitch(folder, mel, tmp_path, capsys):
    np.save(tmp_path / "mel.npy", mel)
    f0 = np.full(30, 110.0, np.float32)
    np.save(tmp_path / "f0.npy", f0)
    out = tmp_path / "out.wav"
    args = ["synthesize", "--model", str(folder), "--mel", str(tmp_path / "mel.npy"), "--out", str(out)]
    assert main([*args, "--f0", str(tmp_path / "f0.npy"), "--pitch-scale", "1.5"]) == 0
    expected = Vocoder.from_pretrained(folder, device="cpu").synthesize(mel, f0=1.5 * f0)
    np.testing.assert_allclose(load_audio(out, PRESET.sample_rate), expected, atol=1e-4)
    np.save(tmp_path / "short.npy", f0[:5])
    capsys.readouterr()
    assert main([*args, "--f0", str(tmp_path / "short.npy")]) == 2
    assert "f0 must be (frames,) = (30,)" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(folder.parent / "step-3.pt"), "--out", str(tmp_path / "m"),
                 "--pitch", str(folder)]) == 0
    assert (tmp_path / "m" / "pitch.pt").is_file()
