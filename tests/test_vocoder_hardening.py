"""Issue #20: user mistakes around the Vocoder and its CLI are one-line errors, never tracebacks or silent
wrong results."""

import errno
import hashlib
import json
import os
import shutil
import struct
import zipfile

import numpy as np
import pytest
import torch
from vocoder_checks import TINY_STUDENT, TINY_TEACHER, fake_checkpoint

from wavesynth import pretrained
from wavesynth.cli import main
from wavesynth.parallel import ParallelWaveNet, StudentConfig
from wavesynth.parallel.task import DistillConfig, StudentTask
from wavesynth.pretrained import export_pretrained
from wavesynth.train import load_config
from wavesynth.train.checkpoint import read_state_dict
from wavesynth.vocoder import MAX_TEMPERATURE, Vocoder
from wavesynth.wavenet import WaveNet, WaveNetConfig


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny exported student folder."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hardening")
    checkpoint = fake_checkpoint(root / "step-3.pt", ParallelWaveNet(StudentConfig(**TINY_STUDENT)))
    return export_pretrained(checkpoint, root / "tiny", "student", "tiny")


@pytest.fixture(scope="module")
def voc(folder):
    return Vocoder.from_pretrained(folder, device="cpu")


@pytest.fixture
def copy(folder, tmp_path):
    """A writable copy of the tiny folder."""
    return shutil.copytree(folder, tmp_path / "copy")


def mel_file(path):
    mel = np.full((80, 6), -6.0, np.float32)
    mel[:, ::3] = -11.5
    np.save(path, mel)
    return str(path)


def cli_error(capsys, *argv):
    """The single stderr line of a failed command (asserting exit status 2 and no traceback)."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("wavesynth: error: ") and err.count("\n") == 1, err
    return err


def test_npy_files_that_hold_no_numbers_are_one_line_errors(capsys, folder, tmp_path):
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    np.savez(tmp_path / "archive.npz", mel=np.zeros((80, 4), np.float32))
    os.replace(tmp_path / "archive.npz", tmp_path / "archive.npy")
    (tmp_path / "empty.npy").write_bytes(b"")
    for name, message in (("strings", "holds <U1 values, not numbers"), ("archive", "an .npz archive"),
                          ("empty", "empty file")):
        err = cli_error(capsys, "synthesize", "--model", str(folder), "--mel", str(tmp_path / f"{name}.npy"),
                        "--out", str(tmp_path / "out.wav"), "--device", "cpu")
        assert f"{name}.npy" in err and message in err, err
    with pytest.raises(ValueError, match="expected a float mel-spectrogram, got dtype <U1"):
        Vocoder.from_pretrained(folder, device="cpu").synthesize(np.array([["a"]]))


def _no_synthesis(*args, **kwargs):
    pytest.fail("synthesised although --out cannot be written")


def test_an_unwritable_out_fails_before_synthesis(capsys, folder, tmp_path, monkeypatch):
    monkeypatch.setattr(Vocoder, "synthesize", _no_synthesis)
    (tmp_path / "a-file").write_text("")
    (tmp_path / "taken.wav").mkdir()
    argv = ["synthesize", "--model", str(folder), "--mel", mel_file(tmp_path / "mel.npy"), "--device", "cpu"]
    for out, message in ((tmp_path / "taken.wav", "Is a directory"),
                         (tmp_path / "a-file" / "out.wav", "a-file")):
        err = cli_error(capsys, *argv, "--out", str(out))
        assert f"{out}: cannot write --out" in err and message in err, err
    assert sorted(os.listdir(tmp_path)) == ["a-file", "mel.npy", "taken.wav"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_folder_fails_before_synthesis(capsys, folder, tmp_path, monkeypatch):
    monkeypatch.setattr(Vocoder, "synthesize", _no_synthesis)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    err = cli_error(capsys, "synthesize", "--model", str(folder), "--mel", mel_file(tmp_path / "mel.npy"),
                    "--out", str(locked / "out.wav"))
    assert "cannot write --out" in err and "Permission denied" in err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_one_line(capsys, folder, tmp_path):
    (tmp_path / "full.wav").symlink_to("/dev/full")  # opens for writing, fails on write
    err = cli_error(capsys, "synthesize", "--model", str(folder), "--mel", mel_file(tmp_path / "mel.npy"),
                    "--out", str(tmp_path / "full.wav"), "--device", "cpu")
    assert "full.wav: cannot write the audio" in err and "No space left on device" in err
    assert os.path.exists("/dev/full") and not os.path.isfile("/dev/full")


def test_a_failed_write_leaves_no_partial_file(capsys, folder, tmp_path, monkeypatch):
    def half_then_full(source, target):
        with open(source, "rb") as file, open(target, "wb") as out:
            out.write(file.read()[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(shutil, "copyfile", half_then_full)
    out = tmp_path / "out.wav"
    for existed in (False, True):
        if existed:
            out.write_bytes(b"an older file")
        err = cli_error(capsys, "synthesize", "--model", str(folder), "--mel", mel_file(tmp_path / "mel.npy"),
                        "--out", str(out), "--device", "cpu")
        assert "No space left on device" in err and not out.exists()


def test_weights_that_do_not_fit_the_config_name_the_folder_and_first_tensor(copy):
    info = json.loads((copy / "config.json").read_text())
    info["model"]["channels"] = 16
    (copy / "config.json").write_text(json.dumps(info))
    with pytest.raises(ValueError) as error:
        Vocoder.from_pretrained(copy, device="cpu")
    message = str(error.value)
    assert message.startswith(f"{copy / 'model.pt'}: weights do not fit the model in config.json") and \
        "flows.0.input_conv.weight is (8, 1, 1) in the file, (16, 1, 1) in the model (and" in message
    assert "\n" not in message


def test_models_lists_the_others_and_names_a_broken_folder(capsys, folder, tmp_path, monkeypatch):
    shutil.copytree(folder, tmp_path / "good")
    for name, change in (("no-mel-name", lambda info: info["mel"].pop("name")),
                         ("no-kind", lambda info: info.pop("kind"))):
        info = json.loads((folder / "config.json").read_text())
        change(info)
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(info))
    (tmp_path / "not-json").mkdir()
    (tmp_path / "not-json" / "config.json").write_text("{")
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    monkeypatch.setattr(pretrained, "DEFAULT_MODEL", "not-shipped")
    assert main(["models"]) == 1
    out, err = capsys.readouterr()
    assert out.split()[:5] == ["good", "student", "speechbrain-16k", "16000", "Hz"] and out.count("\n") == 1
    assert "(default)" in out
    lines = err.splitlines()
    assert len(lines) == 3 and all(line.startswith("wavesynth: warning: skipped ") for line in lines)
    assert "no-kind" in lines[0] and "no-mel-name" in lines[1] and "not-json" in lines[2]
    assert "bad mel settings" in lines[1]


def flip_a_bit_of_a_tensor(path):
    """Flip one bit inside a tensor's data in a torch zip file (its CRC is not checked on load)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        entry = next(e for e in archive.infolist() if "/data/" in e.filename and e.file_size >= 8)
    header = entry.header_offset  # a local file header: 30 bytes, then the name and the extra field
    name_length, extra_length = struct.unpack("<HH", data[header + 26 : header + 30])
    data[header + 30 + name_length + extra_length + 5] ^= 0x10
    path.write_bytes(bytes(data))


def test_export_stores_the_weights_hash_and_loading_checks_it(folder, copy):
    info = json.loads((folder / "config.json").read_text())
    assert info["weights_sha256"] == hashlib.sha256((folder / "model.pt").read_bytes()).hexdigest()
    flip_a_bit_of_a_tensor(copy / "model.pt")
    torch.load(copy / "model.pt", weights_only=True)  # still a readable file of the right shapes
    with pytest.raises(ValueError, match=r"model\.pt: its sha256 [0-9a-f]+… is not weights_sha256") as error:
        Vocoder.from_pretrained(copy, device="cpu")
    assert "\n" not in str(error.value) and "config.json" in str(error.value)
    info.pop("weights_sha256")
    (copy / "config.json").write_text(json.dumps(info))
    assert Vocoder.from_pretrained(copy, device="cpu").name == "tiny"  # folders without a hash still load


@pytest.mark.parametrize("name", pretrained.list_pretrained())
def test_shipped_folders_carry_the_hash_of_their_weights(name):
    path = pretrained.PRETRAINED_DIR / name
    info = json.loads((path / "config.json").read_text())
    assert info["weights_sha256"] == hashlib.sha256((path / "model.pt").read_bytes()).hexdigest()


@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), 1e6, -0.5, MAX_TEMPERATURE + 1, True,
                                         "1"])
def test_temperature_out_of_range_is_one_line(voc, temperature):
    with pytest.raises(ValueError, match=rf"temperature must be a number in \[0, {MAX_TEMPERATURE:g}\]"):
        voc.synthesize(np.full((80, 3), -6.0, np.float32), temperature=temperature)


def test_temperatures_in_range_give_finite_audio(voc):
    mel = np.full((80, 3), -6.0, np.float32)
    mel[:, 0] = -11.5
    for temperature in (0, 0.5, np.float32(1.0), MAX_TEMPERATURE):
        assert np.isfinite(voc.synthesize(mel, temperature=temperature)).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda v: v.synthesize([]), "got an empty list"),
        (lambda v: v.synthesize(np.zeros((0, 80, 10), np.float32)), r"empty batch \(0, 80, 10\)"),
        (lambda v: v.mel(np.zeros((16000, 2), np.float32)),
         r"expected a mono waveform \(T,\) or a batch \(B, T\), got \(16000, 2\): stereo\? average"),
        (lambda v: v.mel(np.zeros((1, 2, 16000), np.float32)), r"got \(1, 2, 16000\)"),
    ],
)
def test_empty_batches_and_stereo_are_one_line(voc, call, message):
    with pytest.raises(ValueError, match=message) as error:
        call(voc)
    assert "\n" not in str(error.value)


class Payload:
    def __reduce__(self):
        return (os.system, ("true",))


def test_a_malicious_pickle_is_refused_in_one_line(copy):
    torch.save({"flows.0.input_conv.weight": Payload()}, copy / "model.pt")
    for load, path in ((read_state_dict, copy / "model.pt"), (Vocoder.from_pretrained, copy)):
        with pytest.raises(ValueError, match="refused a pickle that would run (posix|nt).system") as error:
            load(path)
        message = str(error.value)
        assert "\n" not in message and "weights_only" not in message and "model.pt" in message, message
    (copy / "model.pt").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a readable weights file") as error:
        read_state_dict(copy / "model.pt")
    assert "\n" not in str(error.value) and "weights_only" not in str(error.value)


def test_a_model_folders_weights_are_not_a_teacher_checkpoint(tmp_path):
    checkpoint = fake_checkpoint(tmp_path / "teacher.pt", WaveNet(WaveNetConfig(**TINY_TEACHER)))
    weights = export_pretrained(checkpoint, tmp_path / "teacher", "teacher", "teacher") / "model.pt"
    config = load_config(DistillConfig, overrides=[f"teacher={weights}"])
    with pytest.raises(ValueError, match="a model folder's weights .*, not a training checkpoint") as error:
        StudentTask(config).teacher  # noqa: B018
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        Vocoder.from_pretrained(weights)
