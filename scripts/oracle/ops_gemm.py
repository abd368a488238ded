"""Oracle cases for the gemm family (linear, matmul, conv2d); names and params mirror
tests/cases_gemm.c exactly (test_oracle_ops checks the params)."""
import torch.nn.functional as F

from oracle_common import Case


def G(*shape):
    """A differentiable input with values in [-1, 1]."""
    return (tuple(shape), 1, -1.0, 1.0, 0)


def Fz(*shape):
    """A frozen input (no gradient checked) with values in [-1, 1]."""
    return (tuple(shape), 0, -1.0, 1.0, 0)


def linear(t, p):
    return F.linear(t[0], t[1], t[2] if p[0] else None)


def linear_transposed(t, p):
    return F.linear(t[0].t(), t[1], t[2] if p[0] else None)


def _op(x, trans):
    return x.transpose(-1, -2) if trans else x


def matmul(t, p):
    return p[2] * (_op(t[0], p[0]) @ _op(t[1], p[1]))


def matmul_permuted(t, p):
    a = t[0].permute(int(p[3]), int(p[4]), int(p[5]))
    return p[2] * (_op(a, p[0]) @ _op(t[1], p[1]))


def conv2d(t, p):
    # pad = (top, bottom, left, right) in p[1..4]; F.pad takes (left, right, top, bottom)
    x = F.pad(t[0], (int(p[3]), int(p[4]), int(p[1]), int(p[2])))
    return F.conv2d(x, t[1], t[2] if p[5] else None, stride=int(p[0]))


CASES = [
    # linear: p0 = has bias
    Case("linear_bias", linear, [1], [G(5, 7), G(11, 7), G(11)]),
    Case("linear_nobias", linear, [0], [G(13, 5), G(7, 5)]),
    Case("linear_lead_dims", linear, [1], [G(2, 5, 7), G(11, 7), G(11)]),
    Case("linear_frozen", linear, [1], [G(2, 5, 7), Fz(11, 7), Fz(11)]),
    Case("linear_transposed_inp", linear_transposed, [1], [G(7, 5), G(11, 7), G(11)]),
    # matmul: p0 = trans_a, p1 = trans_b, p2 = alpha
    Case("matmul_plain", matmul, [0, 0, 1], [G(5, 7), G(7, 11)]),
    Case("matmul_trans_a", matmul, [1, 0, 1], [G(7, 5), G(7, 11)]),
    Case("matmul_trans_b", matmul, [0, 1, 1], [G(5, 7), G(11, 7)]),
    Case("matmul_trans_both", matmul, [1, 1, 1], [G(3, 7, 5), G(3, 11, 7)]),
    Case("matmul_batched_alpha", matmul, [0, 0, -0.75], [G(3, 5, 7), G(3, 7, 11)]),
    Case("matmul_bcast_b_2d", matmul, [0, 0, 1], [G(3, 5, 7), G(7, 11)]),
    Case("matmul_bcast_a_trans", matmul, [1, 0, 0.5], [G(1, 7, 5), G(3, 7, 11)]),
    Case("matmul_frozen_b", matmul, [0, 1, 1], [G(3, 5, 7), Fz(3, 11, 7)]),
    Case("matmul_strided_a", matmul_permuted, [0, 0, 1, 1, 0, 2], [G(5, 3, 7), G(3, 7, 11)]),
    Case("matmul_copied_a", matmul_permuted, [0, 0, 1, 2, 0, 1], [G(5, 7, 3), G(3, 7, 11)]),
    # conv2d: p0 = stride, p1..p4 = pad top, bottom, left, right, p5 = has bias
    Case("conv2d_3x3_s1_p1", conv2d, [1, 1, 1, 1, 1, 1], [G(2, 3, 7, 9), G(5, 3, 3, 3), G(5)]),
    Case("conv2d_3x3_s1_nopad", conv2d, [1, 0, 0, 0, 0, 1], [G(1, 5, 9, 7), G(3, 5, 3, 3), G(3)]),
    Case("conv2d_3x3_s1_asym", conv2d, [1, 2, 0, 0, 1, 1], [G(2, 3, 6, 5), G(5, 3, 3, 3), G(5)]),
    Case("conv2d_3x3_s2_p1", conv2d, [2, 1, 1, 1, 1, 1], [G(2, 3, 9, 7), G(5, 3, 3, 3), G(5)]),
    Case("conv2d_1x1", conv2d, [1, 0, 0, 0, 0, 1], [G(2, 5, 7, 3), G(7, 5, 1, 1), G(7)]),
    Case("conv2d_1x1_s2", conv2d, [2, 0, 0, 0, 0, 1], [G(1, 5, 7, 9), G(3, 5, 1, 1), G(3)]),
    Case("conv2d_1x1_pad", conv2d, [1, 1, 0, 0, 2, 1], [G(1, 3, 5, 7), G(5, 3, 1, 1), G(5)]),
    Case("conv2d_vae_down", conv2d, [2, 0, 1, 0, 1, 1], [G(1, 3, 8, 10), G(5, 3, 3, 3), G(5)]),
    Case("conv2d_5x5_nobias", conv2d, [1, 2, 2, 2, 2, 0], [G(1, 3, 7, 9), G(5, 3, 5, 5)]),
    Case("conv2d_2x3_asym_s1", conv2d, [1, 1, 0, 2, 1, 1], [G(2, 3, 5, 7), G(5, 3, 2, 3), G(5)]),
    Case("conv2d_3x3_s3_asym", conv2d, [3, 2, 0, 1, 2, 0], [G(1, 3, 11, 13), G(5, 3, 3, 3)]),
    Case("conv2d_frozen", conv2d, [1, 1, 1, 1, 1, 1], [G(2, 3, 7, 9), Fz(5, 3, 3, 3), Fz(5)]),
    Case("conv2d_frozen_s2", conv2d, [2, 1, 1, 1, 1, 1], [G(1, 5, 9, 7), Fz(3, 5, 3, 3), Fz(3)]),
]
