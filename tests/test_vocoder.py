"""The Vocoder API: model folders, export from a checkpoint, synthesis (chunked, batched), input checks."""

import json

import numpy as np
import pytest
import torch
from vocoder_checks import DATA, PRESET, TINY_STUDENT, TINY_TEACHER, fake_checkpoint

import wavesynth
from wavesynth import pretrained
from wavesynth import vocoder as vocoder_module
from wavesynth.audio import MelExtractor, MelStats, get_preset, load_audio
from wavesynth.parallel import ParallelWaveNet, StudentConfig
from wavesynth.pretrained import export_pretrained, list_pretrained
from wavesynth.train import save_checkpoint
from wavesynth.vocoder import Vocoder
from wavesynth.wavenet import WaveNet, WaveNetConfig, generate


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("student")
    checkpoint = fake_checkpoint(root / "step-3.pt", ParallelWaveNet(StudentConfig(**TINY_STUDENT)))
    return export_pretrained(checkpoint, root / "tiny-student", "student", "tiny-student")


@pytest.fixture(scope="module")
def voc(student_dir):
    return Vocoder.from_pretrained(student_dir, device="cpu")


@pytest.fixture(scope="module")
def speech_mel(voc):
    return voc.mel(load_audio(DATA / "second.flac", voc.sample_rate))


def test_export_writes_a_folder_that_loads(student_dir, voc):
    info = json.loads((student_dir / "config.json").read_text())
    assert info["name"] == "tiny-student" and info["kind"] == "student" and info["mel_stats"] is None
    assert info["mel"] == PRESET.to_dict() and info["training"]["step"] == 3
    assert isinstance(torch.load(student_dir / "model.pt", weights_only=True), dict)
    assert (voc.sample_rate, voc.hop_length, voc.n_mels, voc.config) == (16000, 256, 80, PRESET)
    assert voc.name == "tiny-student" and voc.kind == "student" and voc.to("cpu") is voc


def test_a_training_checkpoint_loads_directly(student_dir, voc, speech_mel):
    from_checkpoint = Vocoder.from_pretrained(student_dir.parent / "step-3.pt", device="cpu")
    assert from_checkpoint.kind == "student" and from_checkpoint.name.endswith("/step-3.pt")
    mel = speech_mel[:, :4]
    np.testing.assert_array_equal(from_checkpoint.synthesize(mel), voc.synthesize(mel))
    with pytest.raises(ValueError, match="not a training checkpoint"):
        Vocoder.from_pretrained(student_dir / "model.pt")


def test_list_pretrained_and_names(student_dir, monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", student_dir.parent)
    assert list_pretrained() == ["tiny-student"]
    assert wavesynth.list_pretrained is list_pretrained and wavesynth.Vocoder is Vocoder
    assert Vocoder.from_pretrained("tiny-student", device="cpu").name == "tiny-student"
    assert pretrained.pretrained_config("tiny-student").kind == "student"
    with pytest.raises(FileNotFoundError, match=r"'nope' \(shipped: tiny-student\)"):
        Vocoder.from_pretrained("nope")
    with pytest.raises(ValueError, match="unknown device"):
        Vocoder.from_pretrained("tiny-student", device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Vocoder.from_pretrained("tiny-student", device="cuda")
    assert pretrained.default_model() == "tiny-student"
    monkeypatch.setattr(pretrained, "DEFAULT_MODEL", "tiny-student")
    assert pretrained.default_model() == "tiny-student"


def test_the_shipped_default_is_the_22k_student_whatever_sorts_first():
    if "ljspeech-22k-student" not in list_pretrained():
        pytest.skip("the shipped 22 kHz student is not installed here")
    assert sorted(list_pretrained())[0] != "ljspeech-22k-student"  # allison-16k-student sorts first
    assert pretrained.default_model() == "ljspeech-22k-student"


def test_no_shipped_models(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "absent")
    assert list_pretrained() == [] and pretrained.default_model() is None
    with pytest.raises(FileNotFoundError, match="no pretrained models"):
        Vocoder.from_pretrained()


def test_mel_matches_the_preset_for_numpy_and_torch(voc):
    wave = load_audio(DATA / "second.flac", voc.sample_rate)
    mel = voc.mel(wave)
    expected = MelExtractor(PRESET)(torch.from_numpy(wave)).numpy()
    np.testing.assert_allclose(mel, expected, atol=1e-5)
    np.testing.assert_allclose(voc.mel(torch.from_numpy(wave)), mel)
    assert voc.mel(np.stack([wave, wave])).shape == (2, *mel.shape)
    with pytest.raises(ValueError, match="float"):
        voc.mel((wave * 32767).astype(np.int16))


def test_synthesize_numpy_torch_single_and_batches(voc, speech_mel):
    mel = speech_mel[:, :20]
    audio = voc.synthesize(mel)
    assert audio.shape == (20 * 256,) and audio.dtype == np.float32 and np.isfinite(audio).all()
    np.testing.assert_array_equal(voc.synthesize(torch.from_numpy(mel)), audio)
    np.testing.assert_array_equal(voc.synthesize(mel), audio)  # deterministic for a seed
    assert not np.array_equal(voc.synthesize(mel, seed=1), audio)
    short, long = speech_mel[:, :7], speech_mel[:, 5:30]
    batch = voc.synthesize([short, torch.from_numpy(long)])
    assert [a.shape for a in batch] == [(7 * 256,), (25 * 256,)]
    for alone, together in zip((voc.synthesize(short), voc.synthesize(long)), batch, strict=True):
        np.testing.assert_allclose(together, alone, atol=1e-5)  # padding does not leak into the output
    assert voc.synthesize(np.stack([mel, mel])).shape == (2, 20 * 256)


def test_chunked_synthesis_equals_unchunked(voc, speech_mel):
    left, right = voc.model.chunk_context_frames
    mel = speech_mel[:, :30]
    assert left + 2 + right < 30  # some chunks lie wholly inside, away from both ends
    whole = voc.synthesize(mel)
    voc.chunk_frames = 2
    try:
        chunked = voc.synthesize(mel)
    finally:
        voc.chunk_frames = vocoder_module.CHUNK_FRAMES
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    assert np.abs(np.diff(chunked)).max() <= np.abs(np.diff(whole)).max() + 1e-5  # no jumps at the seams


@pytest.mark.parametrize(
    ("mel", "message"),
    [
        (np.zeros((40, 80), np.float32), r"expected \(n_mels=80, frames\), got \(40, 80\): transpose it"),
        (np.zeros((64, 40), np.float32), "got 64 mel bins"),
        (np.zeros((80, 0), np.float32), "empty mel"),
        (np.full((80, 4), np.nan, np.float32), "NaN"),
        (np.zeros(80, np.float32), r"expected a mel of shape \(n_mels=80, frames\), got \(80,\)"),
        (np.zeros((80, 4), np.int64), "float"),
        ([], "non-empty list"),
        ("mel.npy", "numpy array or torch tensor, got str"),
    ],
)
def test_bad_mels_get_one_line_errors(voc, mel, message):
    with pytest.raises(ValueError, match=message) as error:
        voc.synthesize(mel)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("convert", "message"),
    [
        (lambda m: 20 * m / np.log(10), "outside"),  # dB
        (lambda m: m / np.log(10), "log10"),
        (lambda m: (m - m.mean(1, keepdims=True)) / m.std(1, keepdims=True), "normalised"),
    ],
)
def test_mels_of_another_convention_warn(voc, speech_mel, convert, message):
    with pytest.warns(UserWarning, match=message):
        voc.synthesize(convert(speech_mel))


def test_a_mel_of_the_right_convention_does_not_warn(voc, speech_mel, recwarn):
    voc.synthesize(speech_mel[:, :8])
    assert not [w for w in recwarn if "mel" in str(w.message)]


def test_damaged_model_folders_get_clear_errors(student_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((student_dir / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="model.pt"):
        Vocoder.from_pretrained(broken)
    weights = (student_dir / "model.pt").read_bytes()
    for damaged in (weights[: len(weights) // 2], b"\x00" * 64, b"not a zip"):
        (broken / "model.pt").write_bytes(damaged)
        with pytest.raises(ValueError, match=r"model\.pt: not a readable weights file"):
            Vocoder.from_pretrained(broken)
    torch.save({"something.else": torch.zeros(3)}, broken / "model.pt")
    with pytest.raises(ValueError, match="do not fit"):
        Vocoder.from_pretrained(broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json: not valid JSON"):
        Vocoder.from_pretrained(broken)
    (broken / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        Vocoder.from_pretrained(broken)


def test_teacher_folder_generates_autoregressively(tmp_path):
    torch.manual_seed(0)
    checkpoint = fake_checkpoint(tmp_path / "teacher.pt", WaveNet(WaveNetConfig(**TINY_TEACHER)))
    teacher = Vocoder.from_pretrained(export_pretrained(checkpoint, tmp_path / "t", "teacher", "t"), "cpu")
    assert Vocoder.from_pretrained(checkpoint, "cpu").kind == "teacher"
    mel = np.full((80, 3), -6.0, np.float32)
    mel[:, 0] = -11.5
    audio = teacher.synthesize([mel, mel[:, :2]])
    assert teacher.kind == "teacher" and [a.shape for a in audio] == [(768,), (512,)]
    assert all(np.isfinite(a).all() for a in audio)


def test_chunked_teacher_generation_equals_unchunked(tmp_path, speech_mel):
    torch.manual_seed(0)
    checkpoint = fake_checkpoint(tmp_path / "teacher.pt", WaveNet(WaveNetConfig(**TINY_TEACHER)))
    teacher = Vocoder.from_pretrained(checkpoint, "cpu")
    left, right = teacher.model.chunk_context_frames
    mel = speech_mel[:, :14]
    assert left + 3 + right < 14  # some chunks lie wholly inside, away from both ends
    whole = teacher.synthesize(mel)
    teacher.chunk_frames = 3
    chunked = teacher.synthesize(mel)  # each chunk replays its left context as a known prefix
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    assert np.abs(whole).max() > 1e-3
    assert np.abs(np.diff(chunked)).max() <= np.abs(np.diff(whole)).max() + 1e-5  # no jumps at the seams


def test_teacher_generation_continues_a_prefix():
    torch.manual_seed(0)
    teacher = WaveNet(WaveNetConfig(**TINY_TEACHER, hop_length=4, n_mels=5, upsample_scales=(4,))).eval()
    mel, noise = torch.randn(2, 5, 6), teacher.head.draw_noise((2, 24))
    whole = generate(teacher, mel, noise=noise)
    continued = generate(teacher, mel, noise=noise, prefix=whole[:, :10])
    torch.testing.assert_close(continued, whole)  # feeding its own samples back changes nothing
    other = torch.randn(2, 10) * 0.1
    diverted = generate(teacher, mel, noise=noise, prefix=other)
    assert torch.equal(diverted[:, :10], other) and not torch.allclose(diverted[:, 10:], whole[:, 10:])
    with pytest.raises(ValueError, match="prefix must be"):
        generate(teacher, mel, noise=noise, prefix=torch.zeros(3, 10))


def test_normalising_preset_takes_statistics_from_the_cache(tmp_path, monkeypatch):
    config = get_preset("pwg-22k")
    cache = tmp_path / "cache"
    cache.mkdir()
    wave = load_audio(DATA / "second.flac", config.sample_rate)
    stats = MelStats.of(MelExtractor(config).log_mel(torch.from_numpy(wave)).numpy())
    stats.save(cache / "stats.json")
    (cache / "preset.json").write_text(config.to_json())
    (cache / "manifest.jsonl").write_text("")
    (cache / "speakers.json").write_text("[]")
    monkeypatch.chdir(tmp_path)
    student = ParallelWaveNet(StudentConfig(**TINY_STUDENT))
    checkpoint = fake_checkpoint(tmp_path / "s.pt", student, "pwg-22k", ["cache"])
    voc = Vocoder.from_pretrained(export_pretrained(checkpoint, tmp_path / "pwg", "student", "pwg"), "cpu")
    mel = voc.mel(wave)
    np.testing.assert_allclose(mel.mean(1), 0, atol=1e-4)
    assert voc.synthesize(mel).shape == (mel.shape[1] * 256,)
    with pytest.warns(UserWarning, match="normalised"):
        voc.synthesize(stats.denormalize(mel))


def test_export_rejects_what_is_not_a_training_checkpoint(tmp_path):
    save_checkpoint({"weights": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a training checkpoint"):
        export_pretrained(tmp_path / "x.pt", tmp_path / "out", "student", "x")
    with pytest.raises(ValueError, match="kind"):
        export_pretrained(tmp_path / "x.pt", tmp_path / "out", "vocoder", "x")


@pytest.mark.parametrize("name", list_pretrained())
def test_shipped_models_load_and_synthesize(name):
    voc = Vocoder.from_pretrained(name, device="cpu")
    wave = load_audio(DATA / "second.flac", voc.sample_rate)[: voc.sample_rate // 2]
    mel = voc.mel(wave)
    audio = voc.synthesize(mel if voc.kind == "student" else mel[:, :4])
    assert audio.shape == ((mel.shape[1] if voc.kind == "student" else 4) * voc.hop_length,)
    assert np.isfinite(audio).all() and audio.dtype == np.float32


@pytest.mark.slow
def test_ten_minutes_synthesise_in_bounded_memory(voc):
    import resource

    mel = np.full((80, 10 * 60 * voc.sample_rate // voc.hop_length), -6.0, np.float32)
    mel[:, ::7] = -11.5
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    audio = voc.synthesize(mel)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert audio.shape == (mel.shape[1] * voc.hop_length,) and np.isfinite(audio).all()
    assert grown < 8 * audio.nbytes  # the output and a little more (unchunked: 30x the output here)
