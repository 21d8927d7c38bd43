"""2^x as a polynomial on the FP32 pipe: FA4's emulated exp2 (the fa-fwd spec's ``exp_poly`` op).

The emitted bodies (``ex2_poly`` in ptx_common.cuh and host_runtime.hpp) compute, per element,
x = max(x, -127), n = floor(x), f = x - n in [0, 1), p(f) in Horner form, and 2^x = p(f) 2^n by
adding n << 23 to p(f)'s bits (its exponent field). p(0) = 1 exactly, so x = -127 (and -inf, masked
keys, clamped to it) gives bits 0: +0. p is a cubic, the degree FA4 uses (flash-attention,
flash_attn/cute/utils.py, ``ex2_emulation``), with the relative-minimax coefficients of
benchmarks/exp2_poly_fit.py (Remez exchange): max relative error 8.56e-5 in fp64, 8.57e-5 with the
coefficients rounded to fp32 and p evaluated in fp32, well under bf16's rounding of P (2^-9).
"""

# c1, c2, c3 of p(f) = 1 + c1 f + c2 f^2 + c3 f^3 (fp32 values; benchmarks/exp2_poly_fit.py)
EXP2_POLY = (0.6951167583465576, 0.22764499485492706, 0.07706703990697861)
EXP2_POLY_ERROR = 8.57e-5   # max |p(f) / 2^f - 1| over fp32 f in [0, 1), evaluated in fp32 (the script's output)
