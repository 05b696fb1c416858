"""Distillation losses: exact entropy, sampled vs closed-form KL, gradients, power, spectral and contrastive
terms."""

from __future__ import annotations

import math

import pytest
import torch
from student_checks import inputs, tiny_config, tiny_student
from torch.distributions import Normal, kl_divergence
from wavenet_checks import tiny_wavenet

from wavesynth.audio import MelExtractor, get_preset
from wavesynth.parallel import (
    ParallelWaveNet,
    contrastive_loss,
    cross_entropy,
    gaussian_kl,
    power_loss,
    reverse_kl,
    spectral_loss,
    student_entropy,
)
from wavesynth.parallel.losses import check_teacher_head, log_mel_l1, stft_magnitude, teacher_log_density
from wavesynth.wavenet import make_head


def tiny_teacher(head: str = "gaussian", dtype: torch.dtype = torch.float64):
    """A tiny untrained teacher (5 mels, hop 4 like the tiny student), frozen."""
    return tiny_wavenet(dtype, head=head).requires_grad_(False)


@pytest.mark.parametrize("noise", ["logistic", "gaussian"])
def test_entropy_formula_matches_monte_carlo(noise):
    """H(p_S)/T = E[log s_tot] + h(ε) against -1/T E[log p_S(x)] over many student samples."""
    student = tiny_student(noise=noise)
    z, mel = inputs(student, batch=2048, frames=2)
    with torch.no_grad():
        x, mu_tot, log_s_tot = student(z, mel)
        log_p = student.step_log_prob(x, mu_tot, log_s_tot)
    monte_carlo = -log_p.mean()
    standard_error = log_p.sum(1).std() / x.shape[1] / math.sqrt(x.shape[0])
    assert abs(student_entropy(log_s_tot, noise) - monte_carlo) < 4 * standard_error
    assert log_s_tot.std() > 0.02  # the entropy really varies with z_<t


def test_sampled_kl_matches_the_closed_form_for_gaussians():
    """Gaussian teacher and student: the M-sample estimate converges to ClariNet's closed-form KL."""
    student, teacher = tiny_student(noise="gaussian"), tiny_teacher("gaussian")
    z, mel = inputs(student, batch=2, frames=2)
    with torch.no_grad():
        x, mu_tot, log_s_tot = student(z, mel)
        params = teacher.distribution_params(x, mel)
        exact = gaussian_kl(*teacher.head.split(params), mu_tot, log_s_tot)
        sampled = reverse_kl(teacher.head, params, mu_tot, log_s_tot, "gaussian", samples=100_000)
    torch.testing.assert_close(sampled.kl, exact.kl, rtol=0.01, atol=0.01)
    torch.testing.assert_close(sampled.kl, sampled.cross_entropy - sampled.entropy)
    mean, log_std = teacher.head.split(params)
    by_torch = kl_divergence(Normal(mu_tot, log_s_tot.exp()), Normal(mean, log_std.exp())).mean()
    torch.testing.assert_close(exact.kl, by_torch)
    torch.testing.assert_close(exact.log_scale_penalty, (log_std - log_s_tot).square().mean())
    torch.testing.assert_close(exact.loss, exact.kl + 4 * exact.log_scale_penalty)


@pytest.mark.parametrize("head", ["mol", "gaussian", "logistic"])
def test_gradients_reach_every_student_parameter_and_no_teacher_parameter(head):
    student, teacher = tiny_student(dtype=torch.float32), tiny_teacher(head, torch.float32)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    z, mel = inputs(student, batch=2, frames=6)
    wave = torch.rand(2, 24) - 0.5
    x, mu_tot, log_s_tot = student(z, mel)
    params = teacher.distribution_params(x, mel)
    other = teacher.distribution_params(x, mel.roll(1, 0))
    loss = (reverse_kl(teacher.head, params, mu_tot, log_s_tot).kl + power_loss(x, wave, 16, 4)
            + 0.3 * contrastive_loss(teacher.head, other, mu_tot, log_s_tot))
    loss.backward()
    for name, p in student.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in teacher.parameters())
    assert not teacher.training
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())


def test_gradients_through_the_closed_form_kl_and_the_teacher_input():
    student = tiny_student(dtype=torch.float32, noise="gaussian")
    teacher = tiny_teacher("gaussian", torch.float32)
    z, mel = inputs(student, batch=2, frames=6)
    x, mu_tot, log_s_tot = student(z, mel)
    x.retain_grad()
    gaussian_kl(*teacher.head.split(teacher.distribution_params(x, mel)), mu_tot, log_s_tot).loss.backward()
    assert x.grad.abs().sum() > 0  # the teacher's input carries gradient back to the student
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_teacher_density_of_a_mixture_head_is_per_unit_of_amplitude():
    """The 16-bit bin probability of a wide MoL component, over the bin width, is the logistic density."""
    mol, logistic = make_head("mol", num_components=1), make_head("logistic")
    params = torch.tensor([[[0.0], [0.1], [-2.0]]], dtype=torch.float64)  # logit, mean, log-scale
    x = torch.tensor([[0.05]], dtype=torch.float64)
    expected = teacher_log_density(logistic, params[:, 1:], x)
    torch.testing.assert_close(teacher_log_density(mol, params, x), expected, rtol=1e-6, atol=1e-6)


def test_cross_entropy_draws_score_each_step_against_its_own_teacher_distribution():
    """With a delta-like student at x_t = a_t, H(p_S, p_T) is -mean log p_T(a_t)."""
    head = make_head("gaussian", log_scale_min=-30.0)
    params = torch.randn(2, 2, 5, dtype=torch.float64)
    a = torch.randn(2, 5, dtype=torch.float64)
    tiny = torch.full_like(a, -25.0)
    expected = -head.log_prob(params, a).mean()
    torch.testing.assert_close(cross_entropy(head, params, a, tiny, samples=3), expected)


def test_power_loss():
    x = torch.randn(2, 4096) * 0.1
    assert power_loss(x, x) == 0
    assert power_loss(x, 2 * x) > 0
    silence = torch.zeros(1, 4096, requires_grad=True)
    power_loss(silence, torch.randn(1, 4096)).backward()
    assert torch.isfinite(silence.grad).all()


def test_spectral_loss_is_zero_on_the_target_and_sees_quiet_noise():
    t = torch.arange(8192) / 22050
    speech_like = 0.3 * torch.sin(2 * math.pi * 220 * t) * (t < 0.2)  # a tone, then silence
    assert spectral_loss(speech_like[None], speech_like[None]) == 0
    quiet_noise = speech_like + 1e-3 * torch.randn(8192)  # -60 dB in the silence
    # the log-magnitude distance sees the quiet noise floor; the power loss (linear magnitudes) hardly does
    assert spectral_loss(quiet_noise[None], speech_like[None]) > 1.0
    assert power_loss(quiet_noise[None], speech_like[None]) < 1e-3
    # both terms are scale-free above the floor: a uniform 6 dB error costs the same at any level
    noise = torch.randn(1, 8192, generator=torch.Generator().manual_seed(0))
    loud, quiet = spectral_loss(2 * noise, noise), spectral_loss(2e-3 * noise, 1e-3 * noise)
    assert math.isclose(loud, quiet, rel_tol=1e-4) and math.isclose(loud, 1 + math.log(2), rel_tol=1e-4)
    silence = torch.zeros(1, 4096, requires_grad=True)
    spectral_loss(silence, torch.randn(1, 4096), (64, 256)).backward()
    assert torch.isfinite(silence.grad).all()


def test_contrastive_loss_is_minus_the_mismatched_kl():
    student, teacher = tiny_student(noise="gaussian"), tiny_teacher("gaussian")
    z, mel = inputs(student, batch=2, frames=3)
    with torch.no_grad():
        x, mu_tot, log_s_tot = student(z, mel)
        other = teacher.distribution_params(x, mel.roll(1, 0))
        closed = contrastive_loss(teacher.head, other, mu_tot, log_s_tot, "gaussian", closed_form=True)
        torch.testing.assert_close(closed, -gaussian_kl(*teacher.head.split(other), mu_tot, log_s_tot).kl)
        generator = torch.Generator().manual_seed(3)
        sampled = contrastive_loss(teacher.head, other, mu_tot, log_s_tot, "gaussian", 8, generator=generator)
        generator.manual_seed(3)
        kl = reverse_kl(teacher.head, other, mu_tot, log_s_tot, "gaussian", 8, generator)
    torch.testing.assert_close(sampled, -kl.kl)


def test_mu_law_teacher_is_rejected():
    with pytest.raises(ValueError, match="not differentiable"):
        check_teacher_head(make_head("mulaw"))
    check_teacher_head(make_head("mol"))


@pytest.mark.slow
@pytest.mark.parametrize("noise", ["logistic", "gaussian"])
def test_distilling_a_tiny_teacher_lowers_the_kl(noise):
    """300 Adam steps on the sampled reverse KL from a fixed random Gaussian-head WaveNet (σ ≈ e^-4)."""
    teacher = tiny_teacher("gaussian", torch.float32)
    with torch.no_grad():
        teacher.output.bias[1] = -4.0
        teacher.output.weight.mul_(3)  # the mean depends strongly on x_<t and the mel
    student = ParallelWaveNet(tiny_config(noise=noise))
    mel = torch.randn(4, 5, 8)

    def kl_estimate() -> float:
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            x, mu_tot, log_s_tot = student(student.draw_noise((4, 32), generator), mel)
            params = teacher.distribution_params(x, mel)
            return reverse_kl(teacher.head, params, mu_tot, log_s_tot, noise, 256, generator).kl.item()

    before = kl_estimate()
    optimizer = torch.optim.Adam(student.parameters(), 3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is several times faster on a shared machine
    try:
        for _ in range(300):
            x, mu_tot, log_s_tot = student(student.draw_noise((4, 32)), mel)
            params = teacher.distribution_params(x, mel)
            loss = reverse_kl(teacher.head, params, mu_tot, log_s_tot, noise, samples=4).kl
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    after = kl_estimate()
    assert before > 2 and after < before / 10, (before, after)


# ------------------------------------------------------------------------- float32 under bf16 autocast


def _bf16_terms(head_name: str = "mol", T: int = 512, seed: int = 0) -> dict:
    """bf16 student outputs and teacher params (as networks under autocast make them), and real audio."""
    g = torch.Generator().manual_seed(seed)
    head = make_head(head_name)
    params = torch.randn(2, head.num_params, T, generator=g)
    params[:, -params.shape[1] // (3 if head_name == "mol" else 2) :] -= 4  # log-scales of real heads
    return {
        "head": head,
        "params": params.bfloat16(),
        "mu_tot": (0.3 * torch.randn(2, T, generator=g)).bfloat16(),
        "log_s_tot": (-3 + 0.5 * torch.randn(2, T, generator=g)).bfloat16(),
        "x": (0.3 * torch.randn(2, T, generator=g)).bfloat16(),
        "teacher_mean": (0.3 * torch.randn(2, T, generator=g)).bfloat16(),
        "teacher_log_std": (-3 + 0.5 * torch.randn(2, T, generator=g)).bfloat16(),
        "wave": 0.3 * torch.randn(2, T, generator=g),
    }


def _float32(terms: dict) -> dict:
    return {k: v.float() if isinstance(v, torch.Tensor) else v for k, v in terms.items()}


LOSSES = {
    "teacher_log_density": lambda t: teacher_log_density(t["head"], t["params"], t["x"]),
    "student_entropy": lambda t: student_entropy(t["log_s_tot"]),
    "cross_entropy": lambda t: cross_entropy(t["head"], t["params"], t["mu_tot"], t["log_s_tot"], samples=3,
                                             generator=torch.Generator().manual_seed(5)),
    "reverse_kl": lambda t: torch.stack(reverse_kl(t["head"], t["params"], t["mu_tot"], t["log_s_tot"],
                                                   generator=torch.Generator().manual_seed(5))),
    "contrastive": lambda t: contrastive_loss(t["head"], t["params"], t["mu_tot"], t["log_s_tot"],
                                              generator=torch.Generator().manual_seed(5)),
    "gaussian_kl": lambda t: torch.stack(gaussian_kl(t["teacher_mean"], t["teacher_log_std"], t["mu_tot"],
                                                     t["log_s_tot"])),
    "stft_magnitude": lambda t: stft_magnitude(t["x"], 64, 16),
    "power_loss": lambda t: power_loss(t["x"], t["wave"], 64, 16),
    "spectral_loss": lambda t: spectral_loss(t["x"], t["wave"], (32, 128)),
    "log_mel_l1": lambda t: log_mel_l1(MelExtractor(get_preset("hifigan-22k")), t["x"], t["wave"]),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_terms_compute_in_float32_under_bf16_autocast(name):
    """bf16 inputs inside autocast: each term is float32 and equals the fp32 computation on the same
    bf16-rounded inputs (autocast would otherwise run the STFT window, the mel matmul and every sum in
    bf16)."""
    terms = _bf16_terms()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = LOSSES[name](terms)
    reference = LOSSES[name](_float32(terms))
    assert low.dtype == torch.float32 and reference.dtype == torch.float32
    torch.testing.assert_close(low, reference, rtol=1e-6, atol=1e-6)


def test_loss_gradients_reach_bf16_inputs_under_autocast():
    terms = _bf16_terms("gaussian")
    for key in ("mu_tot", "log_s_tot", "x", "params"):
        terms[key].requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kl = reverse_kl(terms["head"], terms["params"], terms["mu_tot"], terms["log_s_tot"]).kl
        x, wave = terms["x"], terms["wave"]
        loss = kl + power_loss(x, wave, 64, 16) + spectral_loss(x, wave, (32,))
    loss.backward()
    for key in ("mu_tot", "log_s_tot", "x", "params"):
        grad = terms[key].grad
        assert grad is not None and grad.dtype == torch.bfloat16 and torch.isfinite(grad.float()).all(), key
