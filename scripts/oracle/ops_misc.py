"""Oracle cases for the misc family; names, params and inputs mirror tests/cases_misc.c.

upsample   repeat_interleave on H and W (nearest x f by definition), checked against
           F.interpolate(mode="nearest") while generating.
embedding  the placeholder substitution expressed as one gather: full = cat([table, rows]) and
           index j = idx if idx >= 0 else V + (-1 - idx); only rows carries a gradient.
timestep   LDM openaimodel.timestep_embedding (cos half first) with the half order as a
           parameter and the odd-dim zero column, in float64.
mse        F.mse_loss (mean reduction).
"""
import math

import torch
import torch.nn.functional as F

from oracle_common import Case


def IN(*shape, grad=1, lo=-2.0, hi=2.0):
    return (tuple(shape), grad, lo, hi, 0)


def IDX(*shape, lo, hi):
    return (tuple(shape), 0, lo, hi, 1)


def upsample(t, p):
    f = int(p[0])
    x = t[0]
    y = x.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3)
    ref = F.interpolate(x.detach(), scale_factor=f, mode="nearest")
    assert torch.equal(y.detach(), ref), "repeat_interleave and F.interpolate disagree"
    return y


def embedding(t, p):
    table, rows, idx = t[0], t[1], t[2].clone().long()
    nocc, nvec = int(p[0]), int(p[1])
    # stamp the multi-vector placeholder pattern exactly like f_embedding in cases_misc.c
    for o in range(nocc):
        r, c = int(p[2 + 2 * o]), int(p[3 + 2 * o])
        for j in range(nvec):
            idx[r, c + j] = -1 - j
    V = table.shape[0]
    full = torch.cat([table, rows], dim=0)
    j = torch.where(idx >= 0, idx, V + (-1 - idx))
    return full[j]


def timestep(t, p):
    dim, max_period, cos_first = int(p[0]), p[1], int(p[2])
    ts = t[0]
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float64) / half)
    args = ts[:, None] * freqs[None]
    halves = [torch.cos(args), torch.sin(args)]
    emb = torch.cat(halves if cos_first else halves[::-1], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def EMB_IN(K, B, T):
    return [IN(11, 13, grad=0, lo=-1, hi=1), IN(K, 13, lo=-1, hi=1), IDX(B, T, lo=-K, hi=10)]


TS_IN = [IN(5, lo=0, hi=999)]

CASES = [
    Case("upsample_x2_odd", upsample, [2], [IN(2, 3, 5, 7)]),
    Case("upsample_x3_odd", upsample, [3], [IN(1, 5, 3, 7)]),
    Case("embedding_mixed", embedding, [0], EMB_IN(3, 3, 7)),
    Case("embedding_multivector", embedding, [2, 3, 0, 1, 1, 6], EMB_IN(3, 2, 11)),
    Case("embedding_single", embedding, [2, 1, 1, 0, 1, 5], EMB_IN(1, 2, 9)),
    Case("timestep_d8_cos", timestep, [8, 10000, 1], TS_IN),
    Case("timestep_d8_sin", timestep, [8, 10000, 0], TS_IN),
    Case("timestep_d9_cos", timestep, [9, 10000, 1], TS_IN),
    Case("timestep_d9_sin", timestep, [9, 10000, 0], TS_IN),
    Case("mse", lambda t, p: F.mse_loss(t[0], t[1]), [0], [IN(2, 4, 5, 7), IN(2, 4, 5, 7)]),
]
