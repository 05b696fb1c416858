"""Each flow recipe end to end in --quick mode: a metrics file with finite, sane values, and figures."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "flows"
FIGURES = {
    "toy2d": ["eight_gaussians.png", "two_moons.png", "pinwheel.png", "checkerboard.png"],
    "digits": ["samples.png", "interpolation.png", "inpainting.png", "curves.png"],
    "iaf_vae": ["curves.png", "samples.png"],
}


def run_quick(name: str, out: Path) -> dict:
    subprocess.run([sys.executable, str(RECIPES / f"{name}.py"), "--quick", "--out", str(out)], check=True)
    for figure in FIGURES[name]:
        assert (out / figure).stat().st_size > 1000, figure
    assert (out / "results.md").read_text().startswith("|")
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_toy2d_quick(tmp_path):
    metrics = run_quick("toy2d", tmp_path)
    assert 2.7 < metrics["eight_gaussians_entropy_nats"] < 2.95  # log 8 + log(2πe σ²) ≈ 2.84
    nll = metrics["test_nll_nats"]
    assert set(nll) == {"eight_gaussians", "two_moons", "pinwheel", "checkerboard"}
    for per_model in nll.values():
        assert set(per_model) == {"MAF", "RealNVP", "Glow-style", "NICE", "zuko MAF"}
        assert all(math.isfinite(v) and 0 < v < 10 for v in per_model.values())


@pytest.mark.slow
def test_digits_quick(tmp_path):
    metrics = run_quick("digits", tmp_path)
    bpd = {name: r["test_bpd"] for name, r in metrics["results"].items()}
    assert 2.8 < bpd["Gaussian (full covariance)"] < 3.1
    assert all(math.isfinite(v) and 0 < v < 10 for v in bpd.values())
    assert set(metrics["findings"]) >= {"every_flow_beats_gaussian", "glow_beats_realnvp"}
    assert all(math.isfinite(v) for v in metrics["inpainting"].values())


@pytest.mark.slow
def test_iaf_vae_quick(tmp_path):
    metrics = run_quick("iaf_vae", tmp_path)
    results = metrics["results_nats_per_image"]
    assert set(results) == {"diagonal posterior", "IAF posterior", "diagonal posterior, AR prior"}
    for r in results.values():
        assert -64 * math.log(2) - 20 < r["elbo"] < 0 and math.isfinite(r["log_p"])
        assert r["gap"] > -0.5  # log p(x) estimate - ELBO: non-negative up to Monte Carlo noise
