"""Batched Levenberg-Marquardt for small nonlinear least-squares problems, Jacobians by forward-mode autodiff.

The body fit solves B independent problems at once (one per start), each with at most a few hundred
parameters and residuals. `torch.func.vmap(jacfwd(...))` gives all B Jacobians in one batched evaluation, the
damped normal equations are solved per problem, and each problem keeps its own damping. Written here because
PyTorch's optimisers are first-order (hundreds of steps where this needs tens) and scipy's solvers are neither
batched nor differentiable through the body model; torch.optim is also avoided because constructing one imports
torch._dynamo (seconds on a cold process).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Residual = Callable[..., torch.Tensor]  # (theta [P], *args) -> residuals [N], for ONE problem


def solve(
    residual: Residual,
    theta: torch.Tensor,
    args: tuple[torch.Tensor, ...],
    iterations: int,
    reweight: Callable[[torch.Tensor], tuple[torch.Tensor, ...]] | None = None,
    damping: float = 1e-2,
    tolerance: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimises sum(residual(theta_b, *args_b)^2) for every b; theta [B, P], each arg [B, ...].

    `reweight(theta) -> args`, when given, is called after each accepted step to refresh the per-problem arguments
    (iteratively reweighted least squares for a robust loss). A problem whose accepted step lowers its cost by less
    than `tolerance` (relative) has converged and drops out: the next Jacobians are computed for the others only
    (the Jacobian is nearly all of the cost). Returns (theta [B, P], cost [B])."""
    in_dims = (0,) * (1 + len(args))
    jacobian = torch.func.vmap(torch.func.jacfwd(residual), in_dims=in_dims)
    values = torch.func.vmap(residual, in_dims=in_dims)
    lam = torch.full((theta.shape[0],), damping, dtype=theta.dtype)
    active = torch.ones(theta.shape[0], dtype=torch.bool)
    with torch.no_grad():
        r = values(theta, *args)
        cost = (r**2).sum(-1)
        for _ in range(iterations):
            ids = torch.nonzero(active)[:, 0]
            if len(ids) == 0:
                break
            some = tuple(a[ids] for a in args)
            j = jacobian(theta[ids], *some)  # [b, N, P]
            jt = j.transpose(1, 2)
            jtj = jt @ j
            g = (jt @ r[ids][..., None])[..., 0]
            diagonal = torch.diagonal(jtj, dim1=1, dim2=2)
            system = jtj + torch.diag_embed(lam[ids, None] * diagonal + 1e-6)
            trial = theta[ids] - torch.linalg.solve(system, g[..., None])[..., 0]
            r_trial = values(trial, *some)
            cost_trial = (r_trial**2).sum(-1)
            better = cost_trial < cost[ids]
            converged = better & (cost[ids] - cost_trial <= tolerance * cost[ids])
            theta = theta.index_copy(0, ids, torch.where(better[:, None], trial, theta[ids]))
            lam = lam.index_copy(0, ids, torch.where(better, lam[ids] / 3.0, lam[ids] * 4.0).clamp(1e-7, 1e7))
            active = active.index_copy(0, ids, ~converged)
            if reweight is not None and bool(better.any()):
                args = reweight(theta)
                r = values(theta, *args)
                cost = (r**2).sum(-1)
            else:
                r = r.index_copy(0, ids, torch.where(better[:, None], r_trial, r[ids]))
                cost = cost.index_copy(0, ids, torch.where(better, cost_trial, cost[ids]))
    return theta, cost
