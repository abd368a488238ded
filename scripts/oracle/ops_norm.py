"""Oracle cases for the norm family (groupnorm, layernorm, geglu, softmax).

Names, params and input shapes mirror tests/cases_norm.c exactly; test_oracle_ops checks the
params. Writes tests/fixtures/ops_norm.h5 via:
    /opt/oracle-venv/bin/python scripts/oracle/ops.py norm
"""
import torch
import torch.nn.functional as F

from oracle_common import Case


def X(*shape, grad=1, lo=-2.0, hi=2.0):
    return (tuple(shape), grad, lo, hi, 0)


def W(n, grad=1):
    return ((n,), grad, 0.5, 1.5, 0)


def BV(n, grad=1):
    return ((n,), grad, -0.5, 0.5, 0)


def groupnorm(t, p):
    """p = [groups, eps, silu, has_weight, has_bias]; present parameters follow the input."""
    i = 1
    w = b = None
    if p[3]:
        w, i = t[i], i + 1
    if p[4]:
        b = t[i]
    y = F.group_norm(t[0], int(p[0]), w, b, p[1])
    return F.silu(y) if p[2] else y


def layernorm(t, p):
    """p = [eps, has_weight, has_bias]"""
    i = 1
    w = b = None
    if p[1]:
        w, i = t[i], i + 1
    if p[2]:
        b = t[i]
    return F.layer_norm(t[0], (t[0].shape[-1],), w, b, p[0])


def layernorm_strided(t, p):
    x = t[0].permute(0, 2, 1)
    return F.layer_norm(x, (x.shape[-1],), t[1], t[2], p[0])


def geglu(t, p):
    a, g = t[0].chunk(2, dim=-1)
    return a * F.gelu(g)


def softmax(t, p):
    return torch.softmax(p[0] * t[0], dim=-1)


CASES = [
    # groupnorm
    Case("gn_g3", groupnorm, [3, 1e-5, 0, 1, 1], [X(2, 12, 5, 7), W(12), BV(12)]),
    Case("gn_g3_silu", groupnorm, [3, 1e-5, 1, 1, 1], [X(2, 12, 5, 7), W(12), BV(12)]),
    Case("gn_g4_eps6", groupnorm, [4, 1e-6, 0, 1, 1], [X(2, 12, 5, 7), W(12), BV(12)]),
    Case("gn_g4_eps6_silu", groupnorm, [4, 1e-6, 1, 1, 1], [X(2, 12, 5, 7), W(12), BV(12)]),
    Case("gn_noaffine", groupnorm, [4, 1e-5, 0, 0, 0], [X(2, 12, 5, 7)]),
    Case("gn_noaffine_silu", groupnorm, [3, 1e-6, 1, 0, 0], [X(2, 12, 5, 7)]),
    Case("gn_weight_only_silu", groupnorm, [4, 1e-5, 1, 1, 0], [X(2, 12, 5, 7), W(12)]),
    Case("gn_groups1", groupnorm, [1, 1e-5, 0, 1, 1], [X(3, 5, 7, 3), W(5), BV(5)]),
    Case("gn_groups_eq_c_silu", groupnorm, [5, 1e-5, 1, 1, 1], [X(2, 5, 11), W(5), BV(5)]),
    Case("gn_3d", groupnorm, [2, 1e-6, 0, 1, 1], [X(3, 10, 13), W(10), BV(10)]),
    Case("gn_frozen_weight_silu", groupnorm, [3, 1e-5, 1, 1, 1],
         [X(2, 12, 5, 7), W(12, grad=0), BV(12)]),
    Case("gn_frozen_input_silu", groupnorm, [3, 1e-5, 1, 1, 1],
         [X(2, 12, 5, 7, grad=0), W(12, grad=0), BV(12)]),
    Case("gn_bias_only", groupnorm, [4, 1e-5, 0, 1, 1],
         [X(2, 12, 5, 7, grad=0), W(12, grad=0), BV(12)]),
    Case("gn_big_set", groupnorm, [1, 1e-5, 1, 1, 1], [X(1, 2, 1030), W(2), BV(2)]),
    # layernorm
    Case("ln_3d", layernorm, [1e-5, 1, 1], [X(5, 7, 11), W(11), BV(11)]),
    Case("ln_2d", layernorm, [1e-5, 1, 1], [X(13, 7), W(7), BV(7)]),
    Case("ln_noaffine", layernorm, [1e-5, 0, 0], [X(5, 7, 11)]),
    Case("ln_eps6_weight_only", layernorm, [1e-6, 1, 0], [X(7, 13), W(13)]),
    Case("ln_frozen_weight", layernorm, [1e-5, 1, 1], [X(5, 7, 11), W(11, grad=0), BV(11)]),
    Case("ln_frozen_input", layernorm, [1e-5, 1, 1], [X(5, 7, 11, grad=0), W(11), BV(11)]),
    Case("ln_bias_only", layernorm, [1e-5, 1, 1], [X(5, 7, 11, grad=0), W(11, grad=0), BV(11)]),
    Case("ln_long_rows", layernorm, [1e-5, 1, 1], [X(1, 1030), W(1030), BV(1030)]),
    Case("ln_strided", layernorm_strided, [1e-5], [X(5, 11, 7), W(11), BV(11)]),
    # geglu
    Case("geglu", geglu, [0], [X(5, 7, 22)]),
    Case("geglu_2d", geglu, [0], [X(13, 6)]),
    # softmax
    Case("softmax", softmax, [1], [X(7, 13)]),
    Case("softmax_scale", softmax, [0.3], [X(7, 13)]),
    Case("softmax_large", softmax, [1], [X(7, 13, lo=-50.0, hi=50.0)]),
    Case("softmax_large_scaled", softmax, [-0.7], [X(3, 5, 11, lo=-50.0, hi=50.0)]),
    Case("softmax_rows77", softmax, [0.125], [X(5, 77)]),
]
