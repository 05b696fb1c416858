"""`wavesynth synthesize`, `evaluate`, `export` and `models` on a tiny random student."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavesynth import pretrained
from wavesynth.cli import main
from wavesynth.parallel import ParallelWaveNet, StudentConfig
from wavesynth.train import native_bf16, save_checkpoint

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A pretrained/ folder holding one tiny student, 'tiny'."""
    root = tmp_path_factory.mktemp("pretrained")
    model = ParallelWaveNet(StudentConfig(flow_layers=(2,), flow_cycles=(1,), channels=8, gate_channels=8))
    config = {"teacher": "t.pt", "model": model.config.to_dict(), "data": {"preset": "speechbrain-16k"}}
    save_checkpoint({"config": config, "ema": {"module": model.state_dict()}, "step": 1}, root / "run.pt")
    pretrained.export_pretrained(root / "run.pt", root / "tiny", "student", "tiny")
    return root


@pytest.fixture(autouse=True)
def _pretrained(shipped, monkeypatch):
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", shipped)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_lists_the_shipped_ones(capsys, tmp_path, monkeypatch):
    code, out, _ = run(capsys, "models")
    assert code == 0 and out.split()[:5] == ["tiny", "student", "speechbrain-16k", "16000", "Hz"]
    assert "(default)" in out
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    code, out, _ = run(capsys, "models")
    assert code == 0 and out.startswith("no pretrained models")


def test_synthesize_a_wav_with_the_default_model(capsys, tmp_path):
    out = tmp_path / "sub" / "out.wav"
    code, stdout, err = run(capsys, "synthesize", "--wav", str(DATA / "second.flac"), "--out", str(out),
                            "--device", "cpu")
    auto = "bf16" if native_bf16("cpu") else "fp32"  # a student under precision "auto"
    assert code == 0 and err == "" and f"by tiny (student, {auto})" in stdout
    audio, rate = sf.read(out)
    frames = -(-sf.info(DATA / "second.flac").frames // 256)
    assert rate == 16000 and audio.shape == (frames * 256,) and np.isfinite(audio).all()


def test_synthesize_a_mel_file_and_its_mistakes(capsys, tmp_path):
    mel = np.full((80, 12), -6.0, np.float32)
    mel[:, ::3] = -11.5
    np.save(tmp_path / "mel.npy", mel)
    code, _, err = run(capsys, "synthesize", "--model", "tiny", "--mel", str(tmp_path / "mel.npy"),
                       "--out", str(tmp_path / "a.flac"))
    assert code == 0 and err == "" and sf.info(tmp_path / "a.flac").frames == 12 * 256
    np.save(tmp_path / "transposed.npy", mel.T)
    np.save(tmp_path / "db.npy", mel * 20 / np.log(10))
    mistakes = [
        (["--mel", str(tmp_path / "transposed.npy")], "got (12, 80): transpose it"),
        (["--mel", str(tmp_path / "absent.npy")], "no such file"),
        (["--mel", str(DATA / "second.flac")], ".npy"),
        (["--wav", str(tmp_path / "absent.wav")], "no such audio file"),
        (["--wav", str(DATA / "second.flac"), "--model", "nope"], "no model folder or shipped model named"),
        (["--wav", str(DATA / "second.flac"), "--out", str(tmp_path / "x.mp3")], ".wav or .flac"),
        (["--wav", str(DATA / "second.flac"), "--device", "gpu"], "unknown device 'gpu'"),
    ]
    for argv, message in mistakes:
        if "--out" not in argv:
            argv = [*argv, "--out", str(tmp_path / "b.wav")]
        code, _, err = run(capsys, "synthesize", *argv)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
    code, _, err = run(capsys, "synthesize", "--mel", str(tmp_path / "db.npy"), "--out",
                       str(tmp_path / "c.wav"))
    assert code == 0 and err.startswith("wavesynth: warning: mel values lie in")
    with pytest.raises(SystemExit):  # argparse: exactly one of --wav and --mel
        main(["synthesize", "--wav", "a.wav", "--mel", "b.npy", "--out", "c.wav"])


def test_evaluate_writes_a_report(capsys, tmp_path):
    out = tmp_path / "report"
    code, stdout, _ = run(capsys, "evaluate", "--model", "tiny", "--data", str(DATA / "second.flac"),
                          "--limit", "1", "--out", str(out), "--device", "cpu", "--quiet")
    assert code == 0 and f"report: {out / 'report.md'}" in stdout
    assert "griffin-lim: log-mel distance (dB)" in stdout
    result = json.loads((out / "metrics.json").read_text())
    assert result["files"] == 1 and result["per_file"][0]["id"] == "second"
    assert (out / "spectrograms_second.png").is_file()
    code, _, _ = run(capsys, "evaluate", "--model", "tiny", "--data", str(DATA / "second.flac"),
                     str(DATA / "second.flac"), "--out", str(out), "--device", "cpu", "--quiet")
    assert code == 0 and json.loads((out / "metrics.json").read_text())["files"] == 2  # several sources
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "evaluate", "--model", "tiny", "--data", str(tmp_path / "empty"))
    assert code == 2 and "no audio files" in err


def test_export_a_checkpoint_to_a_model_folder(capsys, shipped, tmp_path):
    out = tmp_path / "my-student"
    code, stdout, _ = run(capsys, "export", "--checkpoint", str(shipped / "run.pt"), "--out", str(out))
    assert code == 0 and "my-student (student, speechbrain-16k, 16000 Hz)" in stdout
    assert json.loads((out / "config.json").read_text())["name"] == "my-student"
    code, _, _ = run(capsys, "synthesize", "--model", str(out), "--mel", _mel_file(tmp_path), "--out",
                     str(tmp_path / "x.wav"), "--device", "cpu")
    assert code == 0 and sf.info(tmp_path / "x.wav").frames == 12 * 256
    code, _, err = run(capsys, "export", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(out))
    assert code == 2 and err.startswith("wavesynth: error: ") and "no such checkpoint" in err


def _mel_file(folder: Path) -> str:
    path = folder / "mel.npy"
    np.save(path, np.full((80, 12), -6.0, np.float32))
    return str(path)
