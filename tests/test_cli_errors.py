"""How the command line reports errors: a user mistake (WavesynthError) is one line and exit status 2, any
other exception a traceback; --debug shows the traceback of a user mistake too. Its choices come from the
registries."""

import os
import subprocess
import sys

import pytest

import wavesynth
from wavesynth import cli
from wavesynth.audio import load_audio
from wavesynth.audio.corpora import CORPORA
from wavesynth.audio.features import PRESETS
from wavesynth.errors import MissingFileError, WavesynthError
from wavesynth.pretrained import MODEL_TYPES


def test_the_errors_keep_the_builtin_catches_working(tmp_path):
    assert wavesynth.WavesynthError is WavesynthError and issubclass(WavesynthError, ValueError)
    assert issubclass(MissingFileError, WavesynthError) and issubclass(MissingFileError, FileNotFoundError)
    assert issubclass(cli.CommandError, WavesynthError)
    with pytest.raises(MissingFileError, match="no such audio file") as caught:
        load_audio(tmp_path / "missing.wav")
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, ValueError)


def _fail_with(monkeypatch, error):
    def command(args):
        raise error

    monkeypatch.setattr(cli, "_models", command)


def test_a_user_mistake_is_one_line(capsys, monkeypatch):
    _fail_with(monkeypatch, WavesynthError("bad setting"))
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err == "wavesynth: error: bad setting\n"


@pytest.mark.parametrize("argv", [["--debug", "models"], ["models", "--debug"]])
def test_debug_shows_the_traceback_of_a_user_mistake(capsys, monkeypatch, argv):
    _fail_with(monkeypatch, MissingFileError("x.wav: no such file"))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "in command" in err, err
    assert "MissingFileError: x.wav: no such file" in err
    assert err.endswith("wavesynth: error: x.wav: no such file\n")


@pytest.mark.parametrize("error", [RuntimeError("internal bug"), KeyError("internal"), ValueError("internal"),
                                   OSError("internal")])
def test_an_internal_bug_propagates(capsys, monkeypatch, error):
    """Not a WavesynthError (a plain ValueError or OSError included): main does not turn it into a line."""
    _fail_with(monkeypatch, error)
    with pytest.raises(type(error)):
        cli.main(["models"])
    assert "wavesynth: error:" not in capsys.readouterr().err


def test_an_internal_bug_shows_its_traceback_and_exit_status_1():
    code = ("import sys; from wavesynth import cli\n"
            "def bug(args):\n    return {}['missing']\n"
            "cli._models = bug\nsys.exit(cli.main(['models']))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 1, result.stderr
    assert "Traceback (most recent call last):" in result.stderr and "KeyError: 'missing'" in result.stderr
    assert "wavesynth: error:" not in result.stderr


def _choices(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    return capsys.readouterr().err


def test_choices_come_from_the_registries(capsys, monkeypatch, tmp_path):
    base = ["preprocess", "--root", str(tmp_path), "--out", str(tmp_path / "out")]
    err = _choices([*base, "--corpus", "nope"], capsys)
    assert "invalid choice: 'nope'" in err and all(repr(name) in err for name in CORPORA), err
    err = _choices([*base, "--corpus", "folder", "--preset", "nope"], capsys)
    assert "invalid choice: 'nope'" in err and all(repr(name) in err for name in PRESETS), err
    err = _choices(["export", "--checkpoint", "c.pt", "--out", str(tmp_path), "--kind", "nope"], capsys)
    assert all(repr(kind) in err for kind in MODEL_TYPES), err
    monkeypatch.setitem(CORPORA, "mine", CORPORA["folder"])
    monkeypatch.setitem(PRESETS, "mine-16k", PRESETS["speechbrain-16k"])
    args = cli.build_parser().parse_args([*base, "--corpus", "mine", "--preset", "mine-16k"])
    assert (args.corpus, args.preset, args.debug) == ("mine", "mine-16k", False)
