"""Model folders (wavesynth.pretrained): config.json as ModelInfo, checkpoint kinds, and the model-type table,
which a new model type joins without a change to the Vocoder."""

import json
from dataclasses import asdict, dataclass

import numpy as np
import pytest
import torch
from torch import nn
from vocoder_checks import PRESET, TINY_STUDENT, TINY_TEACHER, fake_checkpoint

from wavesynth import pretrained
from wavesynth.audio import MelStats, get_preset
from wavesynth.parallel import ParallelWaveNet, StudentConfig
from wavesynth.parallel.task import DistillConfig
from wavesynth.pretrained import MODEL_TYPES, ModelInfo, ModelType, export_pretrained, list_pretrained
from wavesynth.train import load_checkpoint, save_checkpoint
from wavesynth.vocoder import Vocoder
from wavesynth.wavenet import WaveNet, WaveNetConfig
from wavesynth.wavenet.task import TeacherConfig


@pytest.mark.parametrize("name", list_pretrained())
def test_shipped_config_json_round_trips_through_model_info(name):
    data = json.loads((pretrained.PRETRAINED_DIR / name / "config.json").read_text())
    info = ModelInfo.from_dict(data)
    assert isinstance(info.model, MODEL_TYPES[info.kind].config_class)
    written = json.loads(json.dumps(info.to_dict()))
    assert ModelInfo.from_dict(written) == info
    for key, value in data.items():  # the model and mel settings gained fields (with defaults) since
        assert value.items() <= written[key].items() if key in ("model", "mel") else value == written[key]


def test_model_info_round_trips_statistics_and_rejects_what_does_not_fit():
    mel = get_preset("pwg-22k")
    stats = MelStats(7, np.linspace(-5, 1, mel.n_mels), np.linspace(1, 2, mel.n_mels))
    info = ModelInfo("x", "student", StudentConfig(**TINY_STUDENT), mel, stats)
    data = json.loads(json.dumps(info.to_dict()))
    assert "training" not in data and "weights_sha256" not in data  # optional keys only when set
    again = ModelInfo.from_dict(data)
    np.testing.assert_array_equal(again.mel_stats.mean, stats.mean)
    assert again.to_dict() == data and again.model == info.model
    for change, message in ((lambda d: d.pop("mel_stats"), r"missing keys \['mel_stats'\]"),
                            (lambda d: d.update(kind="glow"), "kind must be one of"),
                            (lambda d: d.update(extra=1), r"unknown keys \['extra'\]"),
                            (lambda d: d["model"].update(channel=3), "bad model settings"),
                            (lambda d: d["mel_stats"].pop("m2"), "bad mel settings")):
        broken = json.loads(json.dumps(data))
        change(broken)
        with pytest.raises(ValueError, match=message):
            ModelInfo.from_dict(broken)


def test_an_old_folder_without_hash_or_training_facts_loads(tmp_path):
    torch.manual_seed(0)
    checkpoint = fake_checkpoint(tmp_path / "step-3.pt", ParallelWaveNet(StudentConfig(**TINY_STUDENT)))
    folder = export_pretrained(checkpoint, tmp_path / "old")
    info = json.loads((folder / "config.json").read_text())
    for key in ("training", "weights_sha256"):
        info.pop(key)
    (folder / "config.json").write_text(json.dumps(info))
    voc = Vocoder.from_pretrained(folder, "cpu", precision="fp32")
    assert voc.name == "old" and voc.kind == "student" and voc.info.training is None


def test_a_checkpoint_names_the_kind_it_trains(tmp_path):
    assert MODEL_TYPES["student"].run_config == DistillConfig.__name__
    assert MODEL_TYPES["teacher"].run_config == TeacherConfig.__name__
    path = fake_checkpoint(tmp_path / "old.pt", ParallelWaveNet(StudentConfig(**TINY_STUDENT)))
    assert Vocoder.from_pretrained(path, "cpu").kind == "student"  # saved before config_class: has a teacher
    state = load_checkpoint(path)
    state["config"].pop("teacher")
    state["config_class"] = "DistillConfig"
    save_checkpoint(state, path)
    assert Vocoder.from_pretrained(path, "cpu").kind == "student"
    state["config_class"] = "PitchConfig"
    save_checkpoint(state, path)
    with pytest.raises(ValueError, match="a PitchConfig run, which trains no vocoder") as error:
        export_pretrained(path, tmp_path / "out")
    assert "\n" not in str(error.value)


def test_a_speaker_conditioned_teacher_is_refused(tmp_path):
    teacher = WaveNet(WaveNetConfig(**TINY_TEACHER, n_speakers=2))
    with pytest.raises(ValueError, match="speaker-conditioned teachers"):
        export_pretrained(fake_checkpoint(tmp_path / "t.pt", teacher), tmp_path / "out")


@dataclass
class EchoConfig:
    n_mels: int = 80
    hop_length: int = 256
    excitation_channels: int = 0
    harmonics: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EchoConfig":
        return cls(**data)


class Echo(nn.Module):
    """A model type the package does not know: x_t = gain·ε_t + the mean of x_t's mel frame / 100."""

    def __init__(self, config: EchoConfig) -> None:
        super().__init__()
        self.config = config
        self.gain = nn.Parameter(torch.tensor(0.01))


class EchoSynthesis:
    auto_bf16 = False

    def __init__(self, model: Echo) -> None:
        self.model = model

    chunk_context_frames = (0, 0)

    def draw_noise(self, samples, generator):
        return torch.randn(1, samples, generator=generator)

    def cast(self, precision):
        return self.model

    def synthesize(self, mel, noise, excitation, temperature, prefix):
        level = mel.mean(1).repeat_interleave(self.model.config.hop_length, -1) / 100
        return self.model.gain * temperature * noise + level


def test_a_new_model_type_plugs_into_the_vocoder_with_one_table_entry(tmp_path, monkeypatch):
    monkeypatch.setitem(MODEL_TYPES, "echo", ModelType(EchoConfig, Echo, EchoSynthesis, "EchoRunConfig"))
    model = Echo(EchoConfig())
    config = {"model": model.config.to_dict(), "data": {"preset": PRESET.name, "caches": ["cache/none"]}}
    save_checkpoint({"config": config, "config_class": "EchoRunConfig", "ema": {"module": model.state_dict()},
                     "step": 1}, tmp_path / "run.pt")
    folder = export_pretrained(tmp_path / "run.pt", tmp_path / "echo")
    voc = Vocoder.from_pretrained(folder, "cpu", precision="auto")
    assert (voc.kind, voc.precision, pretrained.pretrained_config(folder).kind) == ("echo", "fp32", "echo")
    mel = np.full((80, 9), -6.0, np.float32)
    mel[:, 0], mel[:, 4] = -11.5, -3.0
    whole = voc.synthesize(mel, seed=1)
    voc.chunk_frames = 2
    np.testing.assert_array_equal(voc.synthesize(mel, seed=1), whole)  # the noise follows the position
    np.testing.assert_allclose(whole[4 * 256 : 5 * 256].mean(), -0.03, atol=0.002)
