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
    (the Jacobian is nearly all of the cost). A problem whose step was rejected keeps its Jacobian (its parameters
    and arguments are unchanged) and only retries with more damping. Returns (theta [B, P], cost [B])."""
    in_dims = (0,) * (1 + len(args))
    jacobian = torch.func.vmap(torch.func.jacfwd(residual), in_dims=in_dims)
    values = torch.func.vmap(residual, in_dims=in_dims)
    lam = torch.full((theta.shape[0],), damping, dtype=theta.dtype)
    active = torch.ones(theta.shape[0], dtype=torch.bool)
    stale = torch.ones(theta.shape[0], dtype=torch.bool)  # whose Jacobian must be (re)computed
    jtj, g = torch.empty(0), torch.empty(0)  # [B, P, P], [B, P]: J^T J and J^T r of each problem's last Jacobian
    with torch.no_grad():
        r = values(theta, *args)
        cost = (r**2).sum(-1)
        for _ in range(iterations):
            ids = torch.nonzero(active)[:, 0]
            if len(ids) == 0:
                break
            fresh = ids[stale[ids]]
            if len(fresh):
                j = jacobian(theta[fresh], *(a[fresh] for a in args))  # [f, N, P]
                jt = j.transpose(1, 2)
                if not len(jtj):
                    jtj, g = j.new_zeros(len(theta), j.shape[2], j.shape[2]), j.new_zeros(len(theta), j.shape[2])
                jtj = jtj.index_copy(0, fresh, jt @ j)
                g = g.index_copy(0, fresh, (jt @ r[fresh][..., None])[..., 0])
            diagonal = torch.diagonal(jtj[ids], dim1=1, dim2=2)
            system = jtj[ids] + torch.diag_embed(lam[ids, None] * diagonal + 1e-6)
            trial = theta[ids] - torch.linalg.solve(system, g[ids][..., None])[..., 0]
            r_trial = values(trial, *(a[ids] for a in args))
            cost_trial = (r_trial**2).sum(-1)
            better = cost_trial < cost[ids]
            converged = better & (cost[ids] - cost_trial <= tolerance * cost[ids])
            theta = theta.index_copy(0, ids, torch.where(better[:, None], trial, theta[ids]))
            lam = lam.index_copy(0, ids, torch.where(better, lam[ids] / 3.0, lam[ids] * 4.0).clamp(1e-7, 1e7))
            active = active.index_copy(0, ids, ~converged)
            stale = stale.index_copy(0, ids, better)
            if reweight is not None and bool(better.any()):
                args = reweight(theta)
                r = values(theta, *args)
                cost = (r**2).sum(-1)
            else:
                r = r.index_copy(0, ids, torch.where(better[:, None], r_trial, r[ids]))
                cost = cost.index_copy(0, ids, torch.where(better, cost_trial, cost[ids]))
    return theta, cost


def constant(like: torch.Tensor, value: torch.Tensor | float) -> torch.Tensor:
    """`value` (a constant of a residual) in `like`'s dtype, carried by forward-mode autodiff with a real zero
    tangent: for the constants of a residual that `solve` differentiates.

    Why: where a plain tensor meets a dual one in an elementwise op, PyTorch (2.13) gives it an "efficient zero"
    tangent whose result shape a Python meta kernel infers, about 0.5 ms per op against 0.02 ms; a body-fit
    residual has dozens of such ops. Concatenated onto an empty slice of a dual tensor, the constant carries a
    real zero tangent instead. The values are the same exactly; outside forward mode it is a cheap copy."""
    value = torch.as_tensor(value, dtype=like.dtype)
    return torch.cat([like.reshape(-1)[:0], value.reshape(-1)]).reshape(value.shape)
