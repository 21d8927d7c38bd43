"""Derive the cubic of the emulated exp2 (twill/emit/polynomial.py, FA4's trick; docs/emit.md).

    python benchmarks/exp2_poly_fit.py

2^x = 2^floor(x) 2^f with f = x - floor(x) in [0, 1), and 2^f ~ p(f) = 1 + c1 f + c2 f^2 + c3 f^3.
The constant term is pinned to 1 so that p(0) = 1 exactly: 2^n for integer n (and 0 for the clamped
-inf) come out exact. c1..c3 minimise the largest relative error max |p(f) / 2^f - 1| on [0, 1], by
the Remez exchange on a dense grid: solve for the coefficients and the level E at which the error
alternates +E, -E, ... on degree + 1 reference points, move the points to the extrema of the error
between its sign changes, repeat; at convergence E is the maximum (equioscillation). f = 0 is not a
reference point (the error is 0 there). The coefficients are then rounded to fp32 and the error is
measured again with the polynomial evaluated in fp32 (Horner form, as the kernels do); prints both,
and the tuple to paste into twill/emit/polynomial.py.
"""

from __future__ import annotations

import numpy as np

DEGREE = 3


def fit(degree: int = DEGREE, points: int = 100001, iterations: int = 20) -> np.ndarray:
    """c1..c_degree of the relative-minimax p(f) = 1 + sum c_k f^k on [0, 1] (fp64)."""
    f = np.linspace(0.0, 1.0, points)
    target = np.exp2(f)
    basis = np.stack([f ** k for k in range(1, degree + 1)], axis=1) / target[:, None]   # error = basis c - rhs
    rhs = 1.0 - 1.0 / target
    signs = (-1.0) ** np.arange(degree + 1)
    chebyshev = (1 - np.cos(np.pi * np.arange(1, degree + 2) / (degree + 1))) / 2   # in (0, 1]
    reference = np.minimum(np.searchsorted(f, chebyshev), points - 1)
    for _ in range(iterations):
        system = np.concatenate([basis[reference], -signs[:, None]], axis=1)
        coefficients = np.linalg.solve(system, rhs[reference])[:-1]
        error = basis @ coefficients - rhs
        runs = np.split(np.arange(1, points), np.flatnonzero(np.diff(np.sign(error[1:]))) + 1)
        extrema = [run[np.argmax(np.abs(error[run]))] for run in runs]
        start = max(range(len(extrema) - degree), key=lambda i: np.abs(error[extrema[i:i + degree + 1]]).min())
        reference = np.array(extrema[start:start + degree + 1])
    return coefficients


def relative_error(coefficients: np.ndarray, points: int = 1 << 20) -> float:
    """max |p(f) / 2^f - 1| over fp32 f in [0, 1], p evaluated in fp32 in Horner form."""
    f = np.linspace(0.0, 1.0, points, dtype=np.float32)
    p = np.float32(0.0)
    for c in coefficients[::-1].astype(np.float32):
        p = (p + c) * f
    p = p + np.float32(1.0)
    return float(np.abs(p.astype(np.float64) / np.exp2(f.astype(np.float64)) - 1.0).max())


def main() -> None:
    exact = fit()
    rounded = exact.astype(np.float32)
    print(f"fp64 coefficients {exact.tolist()}")
    print(f"fp32 coefficients, fp32 Horner: max relative error {relative_error(rounded):.3e}")
    print("EXP2_POLY = (" + ", ".join(f"{float(c)!r}" for c in rounded) + ")")


if __name__ == "__main__":
    main()
