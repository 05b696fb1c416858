"""The CUDA path against the CPU path: cached generation with and without the CUDA graph, teacher-forced
prefixes, chunked synthesis through the Vocoder, and training (bf16 autocast) with resume.

Skipped where no CUDA device is present; ``benchmarks/device_check.sh`` runs them on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from task_checks import STUDENT, TINY, val_metrics, write_config
from wavenet_checks import random_inputs, tiny_wavenet

from wavesynth.audio import load_audio
from wavesynth.cli import main
from wavesynth.pretrained import list_pretrained
from wavesynth.vocoder import Vocoder
from wavesynth.wavenet.generation import generate

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

DATA = Path(__file__).parent / "data"
HEADS = ["mol", "gaussian", "logistic", "mulaw"]


@pytest.fixture(autouse=True)
def full_precision_matmuls():
    """TF32 matmuls and convolutions would put CUDA results 1e-3 away from the CPU's."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _on_cuda(model, mel, noise):
    return model.to("cuda"), mel.to("cuda"), noise.to("cuda")


@pytest.mark.parametrize("head", HEADS)
def test_cuda_graph_generation_equals_step_by_step_and_the_cpu(head):
    """hop 32: two conditioning refills per frame, so the graph of 16 steps is replayed across frames."""
    model = tiny_wavenet(torch.float64, head=head, hop_length=32, upsample_scales=(4, 8))
    mel, _ = random_inputs(model, batch=2, frames=4)
    noise = model.head.draw_noise((2, 4 * 32), dtype=torch.float64)
    on_cpu = generate(model, mel, noise=noise)
    model, mel, noise = _on_cuda(model, mel, noise)
    graphed = generate(model, mel, noise=noise)
    stepped = generate(model, mel, noise=noise, use_cuda_graph=False)
    torch.testing.assert_close(graphed, stepped, atol=1e-12, rtol=0)
    torch.testing.assert_close(graphed.cpu(), on_cpu, atol=1e-9, rtol=0)


@pytest.mark.parametrize("forced", [32, 37])  # a whole number of graph chunks (graph replays), or not
def test_prefix_continuation_on_cuda(forced):
    model = tiny_wavenet(torch.float64, head="gaussian", hop_length=32, upsample_scales=(4, 8))
    mel, _ = random_inputs(model, batch=2, frames=4)
    noise = model.head.draw_noise((2, 4 * 32), dtype=torch.float64)
    model, mel, noise = _on_cuda(model, mel, noise)
    whole = generate(model, mel, noise=noise)
    continued = generate(model, mel, noise=noise, prefix=whole[:, :forced])
    torch.testing.assert_close(continued, whole, atol=1e-12, rtol=0)
    other = 0.1 * torch.randn(2, forced, dtype=torch.float64, device="cuda")
    diverted = generate(model, mel, noise=noise, prefix=other)
    assert torch.equal(diverted[:, :forced], other)
    assert not torch.allclose(diverted[:, forced:], whole[:, forced:])


@pytest.fixture(scope="module")
def shipped_student() -> str:
    if "ljspeech-22k-student" not in list_pretrained():
        pytest.skip("the shipped 22 kHz student is not installed here")
    return "ljspeech-22k-student"


def test_shipped_student_on_cuda_matches_the_cpu_in_batches_and_chunks(shipped_student):
    on_cpu, on_gpu = (Vocoder.from_pretrained(shipped_student, device=d) for d in ("cpu", "cuda"))
    mel = on_cpu.mel(load_audio(DATA / "second.flac", on_cpu.sample_rate))
    expected = on_cpu.synthesize(mel)
    np.testing.assert_allclose(on_gpu.synthesize(mel), expected, atol=1e-3)
    batch = on_gpu.synthesize([mel, mel[:, : mel.shape[1] // 2]])  # different lengths in one batch
    np.testing.assert_allclose(batch[0], expected, atol=1e-3)
    assert batch[1].shape == (mel.shape[1] // 2 * on_gpu.hop_length,)
    on_gpu.chunk_frames = 7  # many seams
    np.testing.assert_allclose(on_gpu.synthesize(mel), expected, atol=1e-3)


def test_shipped_teacher_on_cuda_generates_in_chunks(shipped_student):
    teacher = Vocoder.from_pretrained("ljspeech-22k-teacher", device="cuda")
    mel = teacher.mel(load_audio(DATA / "second.flac", teacher.sample_rate))[:, :40]
    whole = teacher.synthesize(mel)
    teacher.chunk_frames = 16  # the graph path with a prefix of whole conditioning chunks
    np.testing.assert_allclose(teacher.synthesize(mel), whole, atol=1e-3)
    assert whole.shape == (40 * teacher.hop_length,) and np.isfinite(whole).all() and np.abs(whole).max() > 0


def test_teacher_and_student_train_on_cuda_with_bf16_and_resume(cache, tmp_path):
    config = write_config(tmp_path / "teacher.toml", cache, tmp_path / "teacher")
    cuda = ["train.device=cuda", "train.bf16=true", "train.val_every=2", "train.save_every=2"]
    teacher = ["train", "teacher", "--config", str(config), *TINY, *cuda, "model.head=gaussian"]
    assert main([*teacher, "train.steps=2"]) == 0
    assert main([*teacher, "train.steps=4", "--resume"]) == 0
    assert all(np.isfinite(list(m.values())).all() for m in val_metrics(tmp_path / "teacher").values())

    config = write_config(tmp_path / "student.toml", cache, tmp_path / "student")
    student = ["train", "student", "--config", str(config), "--teacher",
               str(tmp_path / "teacher" / "step-00000004.pt"), *STUDENT, *cuda, "loss.kl=gaussian",
               "model.noise=gaussian"]
    assert main([*student, "train.steps=2"]) == 0
    assert main([*student, "train.steps=4", "--resume"]) == 0
    metrics = val_metrics(tmp_path / "student")
    assert sorted(metrics) == [2, 4] and all(np.isfinite(list(m.values())).all() for m in metrics.values())
    on_gpu = Vocoder.from_pretrained(tmp_path / "student" / "step-00000004.pt", device="cuda")
    mel = np.full((80, 5), -6.0, np.float32)
    mel[:, 0] = -11.5  # the preset's floor, as in any real mel
    assert np.isfinite(on_gpu.synthesize(mel)).all()
