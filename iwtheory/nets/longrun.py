"""Long runs of small homogeneous ReLU nets, far enough along gradient flow to see log t grow.

M nets without biases (f(c theta) = c^L f(theta), L layers) are trained together on a small point set by
full-batch gradient descent on the weighted logistic risk R_m = mean_n c_mn l(y_n f_m(x_n)). Two step rules:

- ``constant``: theta <- theta - eta grad R; flow time t += eta;
- ``loss_scaled`` (Lyu & Li 2020): theta <- theta - (eta / R) grad R; flow time t += eta / R. Once the data is
  separated, R falls like e^-margin, so each step covers ever more flow time and log t reaches hundreds in
  tens of thousands of steps, which fixed steps never would. Both follow the gradient flow theta' = -grad R as
  eta -> 0; ``flow_agreement`` measures how closely they agree at a common time.

Each net is recorded when its own flow time first passes each point of a fixed grid, so nets trained with
different weights are compared at (nearly) the same t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from iwtheory.nets.risks import weighted_risk
from iwtheory.theory.seeds import int_seed

STEP_RULES = ("constant", "loss_scaled")


@dataclass
class LongRun:
    """What ``train_long`` recorded: arrays (M, G) over the grid, directions (M, G, P)."""

    t: np.ndarray             # the flow time actually reached at each record (>= the grid point)
    steps: np.ndarray         # the step count at each record
    risk: np.ndarray
    train_acc: np.ndarray
    norm: np.ndarray          # |theta|
    normalised_margin: np.ndarray  # min_n y_n f(x_n) / |theta|^L
    alignment: np.ndarray     # cos(theta, -grad R): 1 where the direction is stationary for the flow
    kkt_residual: np.ndarray  # how far theta is from a KKT point of the margin problem (``kkt_measures``)
    direction: np.ndarray     # theta / |theta|
    frac_pos: dict            # probe name -> (M, G) share of points called positive
    reached: np.ndarray       # (M,) grid points reached (G when the net got to the end)
    diverged: np.ndarray      # (M,) bool


def init_params(M: int, dims: list[int], seeds, scale: float) -> list[torch.Tensor]:
    """Layer weights (M, out, in) in float64, each net from its own seed: N(0, scale^2 / fan_in)."""
    Ws = [torch.empty(M, dims[i + 1], dims[i], dtype=torch.float64) for i in range(len(dims) - 1)]
    for m, seed in enumerate(seeds):
        g = torch.Generator().manual_seed(int_seed(seed, "init"))
        for W in Ws:
            W[m] = torch.randn(W.shape[1:], generator=g, dtype=torch.float64) * scale / np.sqrt(W.shape[2])
    return Ws


def forward(Ws: list[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    """(M, N) logits of the M nets on shared points X (N, d)."""
    h = X.expand(Ws[0].shape[0], *X.shape)
    for k, W in enumerate(Ws):
        h = torch.bmm(h, W.transpose(1, 2))
        if k < len(Ws) - 1:
            h = torch.relu(h)
    return h[..., 0]


def kkt_measures(Ws: list[torch.Tensor], X: torch.Tensor, y: torch.Tensor, c: torch.Tensor) -> tuple[np.ndarray,
                                                                                                     np.ndarray]:
    """Per net: (cos(theta, -grad R), its KKT residual for the margin problem min |theta|^2 s.t. y_n f(x_n) >= 1).

    Scaled to margin 1, theta~ = theta / q_min^(1/L); a KKT point has theta~ = sum_n lam_n grad(y_n f_n)(theta~)
    with lam >= 0 and lam_n = 0 off the support (q~_n > 1). The residual is the larger of the stationarity part,
    min over lam >= 0 of |theta~ - J^T lam| / |theta~| (non-negative least squares), and the complementary
    slackness part, L sum_n lam_n (q~_n - 1) / |theta~|^2: the share of theta~'s squared norm (L sum lam_n q~_n
    for a homogeneous net) carried by points off the support. 0 at a KKT point; nan for a net that does not
    separate its data. The two are minimised together: the residual is sqrt(stationarity^2 + slackness^2) at the
    best lam."""
    from scipy.optimize import nnls

    M, N = Ws[0].shape[0], X.shape[0]
    L = len(Ws)
    params = [W.detach().clone().requires_grad_(True) for W in Ws]
    rows = []
    with torch.enable_grad():  # the caller records under no_grad
        q = y[None, :] * forward(params, X)
        for n in range(N):  # per-example gradients of every net at once (nets share no parameters)
            g = torch.autograd.grad(q[:, n].sum(), params, retain_graph=n < N - 1)
            rows.append(torch.cat([x.reshape(M, -1) for x in g], dim=1))
    J = torch.stack(rows, dim=1).detach().numpy()          # (M, N, P)
    theta = torch.cat([W.detach().reshape(M, -1) for W in Ws], dim=1).numpy()
    q = q.detach().numpy()
    risk_grad = -(c.numpy() * torch.sigmoid(-torch.as_tensor(q)).numpy())[:, :, None] * J  # d R / d theta per n
    descent = -risk_grad.mean(axis=1)
    align = np.einsum("mp,mp->m", theta, descent) / (np.linalg.norm(theta, axis=1) * np.linalg.norm(descent, axis=1))
    kkt = np.full(M, np.nan)
    for m in range(M):
        qmin = q[m].min()
        if not qmin > 0:
            continue
        s = qmin ** (-1.0 / L)
        th, Jm, qt = theta[m] * s, J[m] * s ** (L - 1), q[m] / qmin  # gradients of an L-homogeneous f scale as s^(L-1)
        nt = float(np.linalg.norm(th))
        # both parts in one non-negative least squares (a KKT point zeroes both; lam is not unique without the
        # slackness row, and a solution that spreads lam off the support would hide a KKT point)
        A = np.vstack([Jm.T / nt, L * (qt - 1.0)[None, :] / nt ** 2])
        lam, res = nnls(A, np.r_[th / nt, 0.0])
        kkt[m] = res
    return align, kkt


def train_long(X, y, weights, seeds, hidden=(16,), t_grid=None, eta: float = 1e-4, rule: str = "loss_scaled",
               init_scale: float = 1.0, max_steps: int = 10**6, probes: dict | None = None,
               init: list[torch.Tensor] | None = None) -> LongRun:
    """Train M = len(weights) nets (net m: positives weigh ``weights[m]``, negatives 1; initialised from
    ``seeds[m]``) until each has passed every flow time of ``t_grid`` or ``max_steps`` steps were taken."""
    if rule not in STEP_RULES:
        raise ValueError(f"rule must be one of {STEP_RULES}; got {rule!r}")
    if not (eta > 0 and np.isfinite(eta)):
        raise ValueError(f"eta must be positive and finite; got {eta}")
    X = torch.as_tensor(np.asarray(X, dtype=np.float64))
    y = torch.as_tensor(np.asarray(y, dtype=np.float64))
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
    M, G = len(w), len(t_grid)
    grid = torch.as_tensor(np.asarray(t_grid, dtype=np.float64))
    c = torch.where(y[None, :] > 0, w[:, None], torch.ones_like(w)[:, None])
    dims = [X.shape[1], *[int(h) for h in hidden], 1]
    L = len(dims) - 1
    Ws = [W.clone() for W in init] if init is not None else init_params(M, dims, seeds, init_scale)
    for W in Ws:
        W.requires_grad_(True)
    probes = {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in (probes or {}).items()}
    P = sum(W[0].numel() for W in Ws)
    rec = {k: np.full((M, G), np.nan) for k in ("t", "steps", "risk", "train_acc", "norm", "normalised_margin",
                                                 "alignment", "kkt_residual")}
    direction = np.full((M, G, P), np.nan)
    frac = {k: np.full((M, G), np.nan) for k in probes}
    t = torch.zeros(M, dtype=torch.float64)
    nxt = torch.zeros(M, dtype=torch.long)  # the next grid point each net has to pass
    diverged = torch.zeros(M, dtype=torch.bool)
    for step in range(1, max_steps + 1):
        active = (nxt < G) & ~diverged
        if not bool(active.any()):
            break
        f = forward(Ws, X)
        risk = weighted_risk(f, y[None, :], c)
        bad = ~torch.isfinite(risk) | (risk <= 1e-280)  # past what float64 can follow
        diverged |= bad & active
        active &= ~bad
        scale = torch.where(active, 1.0 / risk.detach() if rule == "loss_scaled" else torch.ones_like(risk),
                            torch.zeros_like(risk))
        for W in Ws:
            W.grad = None
        (scale * risk).sum().backward()
        with torch.no_grad():
            for W in Ws:
                W -= eta * W.grad
            t += eta * scale
            passed = active & (nxt < G) & (t >= grid[nxt.clamp_max(G - 1)])
            if bool(passed.any()):
                f = forward(Ws, X)
                risk = weighted_risk(f, y[None, :], c)
                theta = torch.cat([W.reshape(M, -1) for W in Ws], dim=1)
                norm = theta.norm(dim=1)
                pf = {k: (forward(Ws, v) > 0).double().mean(dim=1) for k, v in probes.items()}
                align, kkt = kkt_measures(Ws, X, y, c)
                for m in torch.nonzero(passed).flatten().tolist():
                    # a step may pass several grid points at once: each gets the state after the step
                    while nxt[m] < G and t[m] >= grid[nxt[m]]:
                        g = int(nxt[m])
                        rec["t"][m, g], rec["steps"][m, g] = float(t[m]), step
                        rec["risk"][m, g] = float(risk[m])
                        rec["train_acc"][m, g] = float(((y * f[m]) > 0).double().mean())
                        rec["norm"][m, g] = float(norm[m])
                        rec["normalised_margin"][m, g] = float((y * f[m]).min() / norm[m] ** L)
                        rec["alignment"][m, g], rec["kkt_residual"][m, g] = float(align[m]), float(kkt[m])
                        direction[m, g] = (theta[m] / norm[m]).numpy()
                        for k in probes:
                            frac[k][m, g] = float(pf[k][m])
                        nxt[m] += 1
    return LongRun(direction=direction, frac_pos=frac, reached=nxt.numpy().copy(), diverged=diverged.numpy(),
                   **rec)


def unit_angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angles between unit vectors along the last axis, 2 atan2(|u - v|, |u + v|): exact for small angles, 0 for
    equal vectors and nan where either is missing (``theory.geometry.angle`` refuses nan and takes any norm)."""
    return 2 * np.arctan2(np.linalg.norm(u - v, axis=-1), np.linalg.norm(u + v, axis=-1))


def angle_rows(direction: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """(M, G) angles between each net's direction and its partner's at the same grid point (nan where either
    is missing)."""
    return unit_angle(direction, direction[partner])


def flow_agreement(X, y, weight: float, seed: int, hidden, t_check: float, eta: float, lr_small: float,
                   init_scale: float = 1.0, max_steps: int = 10**7) -> float:
    """Angle between the directions the loss-scaled rule (step ``eta``) and small fixed steps (``lr_small``)
    reach at flow time ``t_check`` from the same initialisation: how closely the long runs follow the flow. Each
    takes at most ``max_steps`` steps (nan when one does not reach ``t_check`` within them)."""
    dims = [np.asarray(X).shape[1], *[int(h) for h in hidden], 1]
    init = init_params(1, dims, [seed], init_scale)
    runs = [train_long(X, y, [weight], [seed], hidden, [t_check], eta=e, rule=r, init=init, max_steps=n)
            for e, r, n in ((eta, "loss_scaled", max_steps),
                            (lr_small, "constant", min(max_steps, int(np.ceil(t_check / lr_small)) + 1)))]
    if any(int(r.reached[0]) < 1 for r in runs):
        return float("nan")
    a, b = (r.direction[0, 0] for r in runs)
    return float(unit_angle(a, b))
