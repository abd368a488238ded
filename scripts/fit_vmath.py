"""Fits the polynomial coefficients of autograd/cpu/vmath.h (ti_vphif, the normal CDF).

Run once, offline: /opt/oracle-venv/bin/python scripts/fit_vmath.py  (needs numpy, mpmath).
Near-minimax fits by Lawson's iteratively reweighted least squares on Chebyshev nodes, against
mpmath at 30 digits. Prints each fit's coefficients (ascending powers) and its max error.
  P: erf(z) / z = P(z^2),             z in [0, 1],   relative error   (the |z| < 1 branch)
  Q: log(erfc(t)) = Q(t - 2.5),       t in [1, 4],   absolute error   (1 <= |z| < 4)
  H: log(t erfc(t)) + t^2 = H(1/t^2), t in [4, 9.5], absolute error   (|z| >= 4, the tail)
The exp polynomial of ti_vexpf is Cephes' expf (not refitted here).
"""
import mpmath as mp
import numpy as np

mp.mp.dps = 30


def lawson(xs, fx, powers, rel, iters=300):
    """coefficients c of sum_k c_k xs**powers[k] minimising max |error| (relative if rel)"""
    A = np.stack([xs ** p for p in powers], 1)
    w = np.ones_like(xs) / len(xs)
    scale = 1 / np.abs(fx) if rel else np.ones_like(fx)
    for _ in range(iters):
        sw = np.sqrt(w) * scale
        c, *_ = np.linalg.lstsq(A * sw[:, None], fx * sw, rcond=None)
        e = np.abs((A @ c - fx) * scale)
        w = w * e
        w /= w.sum()
    return c, e.max()


def cheb(lo, hi, n=4001):
    return np.cos(np.linspace(0, np.pi, n)) * (hi - lo) / 2 + (lo + hi) / 2


def show(name, c, e):
    print("%s: max error %.3e" % (name, e))
    for v in c:
        print("    %.17g" % v)


z = cheb(0, 1)
z = z[z > 1e-4]
show("P (in z^2)", *lawson(z, np.array([float(mp.erf(v) / v) for v in z]), [2 * k for k in range(6)], True))
t = cheb(1, 4)
show("Q (in t - 2.5)", *lawson(t - 2.5, np.array([float(mp.log(mp.erfc(v))) for v in t]), list(range(9)), False))
t = cheb(4, 9.5)
h = np.array([float(mp.log(mp.erfc(v) * v) + v * v) for v in t])
show("H (in 1/t^2)", *lawson(1 / t, h, [2 * k for k in range(5)], False))
