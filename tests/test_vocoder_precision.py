"""bf16 synthesis: Vocoder(precision=...), the student's packed flows and the teacher's cached generation."""

import numpy as np
import pytest
import torch
from vocoder_checks import TINY_STUDENT, TINY_TEACHER, fake_checkpoint

from wavesynth import synthesis
from wavesynth.cli import main
from wavesynth.parallel import ParallelWaveNet, StudentConfig, StudentContext
from wavesynth.parallel.student import packed_flow
from wavesynth.pretrained import export_pretrained
from wavesynth.synthesis import StudentSynthesis, TeacherSynthesis, synthesis_precision
from wavesynth.vocoder import Vocoder
from wavesynth.wavenet import WaveNet, WaveNetConfig, generate


def relative_rms(estimate, reference) -> float:
    return float(np.sqrt(np.mean((estimate - reference) ** 2) / np.mean(reference**2)))


@pytest.fixture(scope="module")
def student_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = ParallelWaveNet(StudentConfig(**TINY_STUDENT, excitation="sine"))
    with torch.no_grad():  # weights far enough from the initialisation that every flow does something
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return fake_checkpoint(tmp_path_factory.mktemp("student") / "step-3.pt", model)


@pytest.fixture(scope="module")
def speech_mel_and_f0(student_checkpoint):
    voc = Vocoder.from_pretrained(student_checkpoint, "cpu", precision="fp32")
    t = np.arange(voc.sample_rate) / voc.sample_rate
    wave = (0.3 * np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    mel = voc.mel(wave)
    return mel, np.full(mel.shape[1], 150.0, np.float32)


def test_bf16_student_stays_close_to_fp32_and_returns_float32(student_checkpoint, speech_mel_and_f0):
    mel, f0 = speech_mel_and_f0
    fp32 = Vocoder.from_pretrained(student_checkpoint, "cpu", precision="fp32")
    bf16 = Vocoder.from_pretrained(student_checkpoint, "cpu", precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    flows = bf16.model.flows  # all but the last flow in bf16 (StudentSynthesis.cast)
    assert [f.output.weight.dtype for f in flows] == [torch.bfloat16] * (len(flows) - 1) + [torch.float32]
    reference, audio = fp32.synthesize(mel, f0=f0), bf16.synthesize(mel, f0=f0)
    assert audio.dtype == np.float32 and audio.shape == reference.shape
    assert np.abs(reference).max() > 1e-2
    # bf16 has an 8-bit significand (relative rounding 2^-9 = 0.2 %): the flows' networks see it, their
    # composition x <- x·s + μ does not
    assert relative_rms(audio, reference) < 0.02
    assert "precision=bf16" in repr(bf16)


def test_student_sample_composes_the_flows_in_float32(student_checkpoint):
    fp32 = Vocoder.from_pretrained(student_checkpoint, "cpu", precision="fp32").model
    bf16 = Vocoder.from_pretrained(student_checkpoint, "cpu", precision="bf16").model
    mel = torch.randn(2, 80, 6) * 0.5 - 5
    noise = fp32.draw_noise((2, 6 * 256), torch.Generator().manual_seed(0))
    excitation = torch.randn(2, fp32.config.excitation_channels, 6 * 256) * 0.1
    x = bf16.sample(mel, noise=noise, excitation=excitation)
    with torch.no_grad():
        reference = fp32(noise, mel, excitation)[0]  # the training forward pass, float32
    assert x.dtype == torch.float32
    assert relative_rms(x.numpy(), reference.numpy()) < 0.02


def test_bf16_teacher_generates_float32_audio_close_to_fp32(tmp_path):
    torch.manual_seed(0)
    checkpoint = fake_checkpoint(tmp_path / "teacher.pt", WaveNet(WaveNetConfig(**TINY_TEACHER)))
    fp32 = Vocoder.from_pretrained(checkpoint, "cpu", precision="fp32").model
    bf16 = Vocoder.from_pretrained(checkpoint, "cpu", precision="bf16").model
    mel = torch.randn(1, 80, 2) * 0.5 - 5
    reference = generate(fp32, mel, deterministic=True)
    x = generate(bf16, mel, deterministic=True)
    assert x.dtype == torch.float32
    assert relative_rms(x.numpy(), reference.numpy()) < 0.05
    prefix = torch.randn(1, 100) * 0.1
    assert torch.equal(generate(bf16, mel, deterministic=True, prefix=prefix)[:, :100], prefix)


def test_auto_is_bf16_only_for_a_student_on_native_bf16_hardware(monkeypatch, student_checkpoint):
    student = StudentSynthesis(ParallelWaveNet(StudentConfig(**TINY_STUDENT)))
    teacher = TeacherSynthesis(WaveNet(WaveNetConfig(**TINY_TEACHER)))
    monkeypatch.setattr(synthesis, "resolve_precision", lambda name, device: "bf16")  # native bf16
    assert synthesis_precision("auto", student, "cpu") == "bf16"
    assert synthesis_precision("auto", teacher, "cpu") == "fp32"
    assert synthesis_precision("bf16", teacher, "cpu") == "bf16"
    assert Vocoder.from_pretrained(student_checkpoint, "cpu").precision == "bf16"
    monkeypatch.setattr(synthesis, "resolve_precision", lambda name, device: "fp32")  # no native bf16
    assert synthesis_precision("auto", student, "cpu") == "fp32"


def test_unknown_precision_is_a_one_line_error(student_checkpoint, tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown precision 'fp16'; choose one of auto, fp32, bf16"):
        Vocoder.from_pretrained(student_checkpoint, "cpu", precision="fp16")
    folder = export_pretrained(student_checkpoint, tmp_path / "m", "student", "m")
    mel = tmp_path / "mel.npy"
    np.save(mel, np.full((80, 4), -6.0, np.float32))
    args = ["synthesize", "--model", str(folder), "--mel", str(mel), "--out", str(tmp_path / "o.wav"),
            "--f0", str(tmp_path / "f0.npy")]
    np.save(tmp_path / "f0.npy", np.full(4, 120.0, np.float32))
    assert main([*args, "--precision", "bf16"]) == 0
    assert "(student, bf16)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--precision", "fp16"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err


def test_bf16_packed_flow_keeps_its_residual_stream_in_float32():
    """Arithmetic rounding alone (the weights already bf16 values): a deep flow's packed bf16 (μ, log s)
    stay over 10x closer to fp32 than the same flow run with every activation in bf16, because the packed
    path keeps x, the residual stream h and the output 1x1 in float32 and rounds each layer's update once
    (with h in bf16 too it was 7x)."""
    torch.manual_seed(0)
    model = ParallelWaveNet(StudentConfig(**{**TINY_STUDENT, "flow_layers": (24,), "flow_cycles": (3,)}))
    flow, upsampler = model.flows[0], model.upsampler(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
        model.to(torch.bfloat16).float()
        mel, z = (torch.randn(1, 80, 8) * 0.5 - 5).bfloat16(), torch.randn(1, 8 * 256) * 0.1
        reference = torch.stack(packed_flow(flow, z, mel.float(), upsampler.phase_weights()))
        flow.to(torch.bfloat16)
        packed = torch.stack(packed_flow(flow, z, mel, upsampler.phase_weights().bfloat16()))
        upsampler.to(torch.bfloat16)
        log_s, mu = flow.log_scale_and_shift(z.bfloat16(), StudentContext(mel))
        naive = torch.stack([mu, log_s]).float()
    assert packed.dtype == torch.float32
    packed_error, naive_error = (packed - reference).norm(), (naive - reference).norm()
    assert packed_error < 0.1 * naive_error, (packed_error, naive_error)
