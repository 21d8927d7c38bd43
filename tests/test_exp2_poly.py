"""FA4's emulated exp2 (twill/emit/polynomial.py): the cubic's coefficients are the minimax fit the
derivation script computes, and the emitted algorithm (ex2_poly in ptx_common.cuh and
host_runtime.hpp), reimplemented here in NumPy fp32 with the package's coefficients, is within the
stated relative error of 2^x and gives 0 for the masked -inf."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from twill.emit.polynomial import EXP2_POLY, EXP2_POLY_ERROR

ROOT = Path(__file__).resolve().parents[1]


def ex2_poly(x: np.ndarray) -> np.ndarray:
    """The emitted steps in fp32: clamp, floor (the device's add rounding down to 1.5 2^23 gives the
    same n), fraction, Horner, n added into the exponent field of p's bits."""
    x = np.maximum(x.astype(np.float32), np.float32(-127))
    n = np.floor(x)
    f = x - n
    c1, c2, c3 = (np.float32(c) for c in EXP2_POLY)
    p = ((c3 * f + c2) * f + c1) * f + np.float32(1)
    bits = p.view(np.uint32) + (n.astype(np.int32).view(np.uint32) << np.uint32(23))
    return bits.view(np.float32)


def test_the_cubic_is_within_its_stated_error_of_exp2():
    x = np.linspace(-126, 0, 1 << 21, dtype=np.float32)   # P's exponents: c (S - m) <= 0, normal results
    error = np.abs(ex2_poly(x).astype(np.float64) / np.exp2(x.astype(np.float64)) - 1)
    assert error.max() <= EXP2_POLY_ERROR < 1e-4
    assert error.max() > 0.9 * EXP2_POLY_ERROR            # the stated error is the measured one, not a loose bound
    whole = np.arange(-126, 1, dtype=np.float32)
    assert np.array_equal(ex2_poly(whole), np.exp2(whole))   # p(0) = 1: powers of two are exact


def test_masked_and_underflowing_exponents_give_zero():
    assert np.all(ex2_poly(np.array([-np.inf, -1e30, -200, -127], dtype=np.float32)) == 0)


def test_the_coefficients_are_the_derivation_scripts_fit():
    spec = importlib.util.spec_from_file_location("exp2_poly_fit", ROOT / "benchmarks/exp2_poly_fit.py")
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    assert tuple(float(c) for c in fit.fit().astype(np.float32)) == EXP2_POLY
    assert abs(fit.relative_error(np.array(EXP2_POLY)) - EXP2_POLY_ERROR) < 1e-7
