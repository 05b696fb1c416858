"""Every shipped model still works as recorded: its log-mel distance on the committed clips matches its
check.json and its card (``wavesynth.eval.check``), and the check fails on a broken model."""

import json

import numpy as np
import pytest
import torch
from vocoder_checks import DATA, fake_checkpoint

from wavesynth.cli import main
from wavesynth.eval.check import CHECK_FILE, recheck
from wavesynth.pretrained import PRETRAINED_DIR, list_pretrained
from wavesynth.vocoder import Vocoder


def load(name: str) -> Vocoder:
    check = json.loads((PRETRAINED_DIR / name / CHECK_FILE).read_text())
    return Vocoder.from_pretrained(name, device="cpu", precision=check["precision"])


@pytest.mark.parametrize("name", list_pretrained())
def test_shipped_model_matches_its_recorded_check_and_card(name):
    folder = PRETRAINED_DIR / name
    assert recheck(folder, load(name), DATA) == []
    card = (folder / "MODEL_CARD.md").read_text()
    for clip, distance in json.loads((folder / CHECK_FILE).read_text())["clips"].items():
        assert f"{clip} {distance:.2f} dB" in card, f"{name}: the card does not state the check of {clip}"


def test_the_check_fails_on_a_broken_model():
    name = "ljspeech-22k-student"
    voc = load(name)
    with torch.no_grad():  # a damaged last flow: finite audio of the right length, but worse
        voc.model.flows[-1].output.weight.mul_(4)
    problems = recheck(PRETRAINED_DIR / name, voc, DATA)
    assert [p.split(":")[0] for p in problems] == ["second.flac", "minute.flac"]
    assert "recorded" in problems[0] and "tolerance" in problems[0]


def test_export_records_a_check(tmp_path, capsys):
    state = tmp_path / "state.pt"
    model = Vocoder.from_pretrained("allison-16k-student", "cpu", precision="fp32").model
    fake_checkpoint(state, model)
    out = tmp_path / "m"
    assert main(["export", "--checkpoint", str(state), "--out", str(out), "--check-clips",
                 str(DATA / "second.flac")]) == 0
    check = json.loads((out / CHECK_FILE).read_text())
    assert set(check["clips"]) == {"second.flac"} and check["precision"] == "fp32"
    assert f"second.flac {check['clips']['second.flac']:.2f} dB" in capsys.readouterr().out
    assert recheck(out, Vocoder.from_pretrained(out, "cpu", precision="fp32"), DATA) == []
    assert main(["export", "--checkpoint", str(state), "--out", str(tmp_path / "n"), "--check-clips",
                 str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav: no such audio file" in capsys.readouterr().err


#: Each shipped model's fp32 audio for a fixed mel and seed, saved by the code before issue #18's refactor
#: (commit 5b79b6e); the refactor reproduced it bit for bit on the machine that saved it.
SAVED_OUTPUTS = DATA / "shipped_outputs.npz"


@pytest.mark.parametrize("name", ["ljspeech-22k-student", "allison-16k-student", "ljspeech-22k-teacher"])
def test_shipped_model_synthesises_the_audio_saved_before_the_refactor(name):
    saved = np.load(SAVED_OUTPUTS)
    voc = Vocoder.from_pretrained(name, device="cpu", precision="fp32")
    audio = voc.synthesize(saved[f"{name}/mel"], seed=0)
    reference = saved[name]
    assert audio.shape == reference.shape
    # another CPU's kernels round differently (AVX2 against AVX-512): equal to float32 rounding, not bits
    assert np.sqrt(np.mean((audio - reference) ** 2) / np.mean(reference**2)) < 1e-3
