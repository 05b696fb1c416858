import pytest
import torch
from torch import nn

from wavesynth.train import EMA


def test_ema_follows_the_warmed_up_exponential_average():
    model = nn.Linear(3, 2)
    model.register_buffer("count", torch.zeros(()))
    ema = EMA(model, decay=0.5)
    expected = [p.detach().clone() for p in model.parameters()]
    for n in range(6):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model.count += 1
        d = min(0.5, (1 + n) / (10 + n))
        assert ema.decay_at(n) == d
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, model.parameters(), strict=True)]
        ema.update(model)
    for e, p in zip(expected, ema.module.parameters(), strict=True):
        torch.testing.assert_close(p, e)
    assert ema.module.count == 6 and ema.updates == 6
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training


def test_ema_decay_schedule_and_zero_decay():
    ema = EMA(nn.Linear(1, 1), decay=0.999)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10**6) == 0.999
    model = nn.Linear(2, 2)
    copy = EMA(model, decay=0.0)
    with torch.no_grad():
        model.weight.mul_(3)
    copy.update(model)
    assert torch.equal(copy.module.weight, model.weight)


def test_ema_state_round_trip():
    model = nn.Linear(2, 2)
    ema = EMA(model, 0.9)
    ema.update(model)
    other = EMA(nn.Linear(2, 2), 0.9)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1 and torch.equal(other.module.weight, ema.module.weight)
