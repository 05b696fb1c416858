"""Shared exactness checks for flow transforms (float64, small inputs)."""

from __future__ import annotations

import torch
from torch.autograd.functional import jacobian

from wavesynth.flows import Transform


def assert_round_trip(transform: Transform, x: torch.Tensor, context=None, atol: float = 1e-6) -> None:
    """inverse(forward(x)) == x, and the inverse log|det| is the negative of the forward one."""
    z, logabsdet = transform(x, context)
    assert logabsdet.shape == (x.shape[0],)
    x_back, inverse_logabsdet = transform.inverse(z, context)
    torch.testing.assert_close(x_back, x, atol=atol, rtol=0)
    torch.testing.assert_close(inverse_logabsdet, -logabsdet, atol=atol, rtol=1e-6)


def assert_logabsdet_matches_autograd(transform: Transform, x: torch.Tensor, context=None, atol=1e-6) -> None:
    """forward's log|det| equals log|det J| of the Jacobian that autograd computes, sample by sample."""
    _, logabsdet = transform(x, context)
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        ci = _row(context, i)

        def f(v, xi=xi, ci=ci):
            return transform(v.reshape(xi.shape), ci)[0].reshape(-1)

        jac = jacobian(f, xi.reshape(-1))
        expected = torch.linalg.slogdet(jac)[1]
        torch.testing.assert_close(logabsdet[i], expected, atol=atol, rtol=1e-6)


def _row(context, i: int):
    """Row i of a context: a tensor, or a (named) tuple of tensors and Nones."""
    if isinstance(context, tuple):
        return type(context)(*(_row(c, i) for c in context))
    return None if context is None else context[i : i + 1]


def assert_exact_flow(transform: Transform, x: torch.Tensor, context=None, atol: float = 1e-6) -> None:
    """Round trip and Jacobian check together (call with the transform in eval mode where it matters)."""
    assert_round_trip(transform, x, context, atol)
    assert_logabsdet_matches_autograd(transform, x, context, atol)
