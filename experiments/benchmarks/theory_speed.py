"""Theory engine timings: gradient flow to t = 1e100, GD steps per second, max_margin vs scikit-learn.

command:  python experiments/benchmarks/theory_speed.py   (or `make bench`)
runtime:  not typed here: the benchmark prints what it measured and the hardware it ran on
Prints each figure with the machine it ran on. SVC is compared on data closed under
(x, y) -> (-x, -y), where its intercept is 0, so both solve the same hard-margin problem.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
from sklearn.svm import SVC

from iwtheory.theory.dynamics import gradient_descent, gradient_flow
from iwtheory.theory.maxmargin import kkt_residual, max_margin


def mixture(N, d, sep, seed=0, symmetric=False):
    rng = np.random.default_rng(seed)
    n = N // 2 if symmetric else N
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    X = rng.standard_normal((n, d))
    X[:, 0] += y * sep / 2
    if symmetric:
        X, y = np.vstack([X, -X]), np.concatenate([y, -y])
    return X, y


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, numpy {np.__version__}")

    X, y = mixture(1000, 100, 6.0)
    for loss in ("logistic", "exponential"):
        t, tr = best_of(lambda: gradient_flow(X, y, loss=loss, t_max=1e100, n_records=100))
        print(f"gradient_flow N=1000 d=100 {loss:11s} to t=1e100: {t:.3f} s "
              f"({tr.meta['nfev']} rhs evaluations, final angle {tr.angle[-1]:.2e} rad)")

    for N, d in ((2, 2), (100, 3), (1000, 100)):
        Xg, yg = mixture(N, d, 6.0) if N > 2 else (np.array([[1.0, 0.2], [-0.3, 1.0]]), np.ones(2))
        steps = 20_000 if N <= 100 else 2_000
        t, _ = best_of(lambda: gradient_descent(Xg, yg, lr=0.1, steps=steps, n_records=20), repeat=2)
        print(f"gradient_descent N={N} d={d}: {steps / t:,.0f} steps/s")

    for N, d in ((1000, 50), (4000, 200)):
        Xs, ys = mixture(N, d, 5.0, symmetric=True)
        t_ours, ours = best_of(lambda: max_margin(Xs, ys), repeat=2)
        t_svc, svc = best_of(lambda: SVC(kernel="linear", C=1e10, tol=1e-8).fit(Xs, ys), repeat=1)
        Z = Xs * ys[:, None]
        a_svc = np.zeros(len(ys))
        a_svc[svc.support_] = np.abs(svc.dual_coef_[0])
        print(f"max_margin N={N} d={d}: ours {t_ours:.3f} s (KKT residual {ours.kkt_residual:.1e}), "
              f"SVC {t_svc:.3f} s (KKT residual {kkt_residual(Z, svc.coef_[0], a_svc):.1e}, "
              f"|intercept| {abs(svc.intercept_[0]):.1e}), speed-up {t_svc / t_ours:.1f}x")

    X, y = mixture(10_000, 1_000, 8.0, seed=1)
    t, r = best_of(lambda: max_margin(X, y), repeat=1)
    print(f"max_margin N=10000 d=1000: ours {t:.2f} s, {len(r.support)} support vectors, "
          f"KKT residual {r.kkt_residual:.1e} (SVC not run at this size)")


if __name__ == "__main__":
    main()
