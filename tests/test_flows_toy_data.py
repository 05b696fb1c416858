import math

import pytest
import torch

from wavesynth.flows import toy_data


@pytest.mark.parametrize("name", sorted(toy_data.TOY_DENSITIES))
def test_toy_samplers_are_reproducible_and_two_dimensional(name):
    a = toy_data.sample_toy2d(name, 500, torch.Generator().manual_seed(1))
    b = toy_data.sample_toy2d(name, 500, torch.Generator().manual_seed(1))
    assert a.shape == (500, 2) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)


def test_eight_gaussians_density_integrates_to_one_and_entropy_is_near_separated_limit():
    grid = torch.linspace(-6, 6, 601, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    density = toy_data.eight_gaussians_log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp()
    assert abs((density.sum() * (grid[1] - grid[0]) ** 2).item() - 1) < 1e-4
    # Well-separated components: H ≈ log 8 + log(2πe σ²) with σ = 0.5/√2 (overlap lowers it slightly).
    separated = math.log(8) + math.log(2 * math.pi * math.e * 0.125)
    entropy = toy_data.eight_gaussians_entropy(200_000, torch.Generator().manual_seed(0))
    assert separated - 0.03 < entropy < separated + 0.01


def test_checkerboard_only_fills_dark_squares():
    x = toy_data.checkerboard(20_000, torch.Generator().manual_seed(0))
    parity = (torch.floor(x[:, 0] / 2) + torch.floor(x[:, 1] / 2)) % 2
    assert torch.all(parity == 0)


def test_unknown_toy_density_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown toy density 'spiral'"):
        toy_data.sample_toy2d("spiral", 10)
