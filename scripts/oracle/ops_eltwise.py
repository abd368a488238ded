"""Oracle cases for the eltwise family; names and params mirror tests/cases_eltwise.c."""
import torch
import torch.nn.functional as F

from oracle_common import Case


def IN(*shape, grad=1, lo=-2.0, hi=2.0):
    return (tuple(shape), grad, lo, hi, 0)


def axpby(t, p):
    return p[0] * t[0] + p[1] * t[1]


def add_strided(t, p):
    return t[0].t() + t[1]


def reduce(t, p):
    nd = int(p[1])
    dims = [int(d) for d in p[2:2 + nd]]
    keep = bool(p[7])
    x = t[0]
    if nd == 0:
        r = x.mean() if p[0] else x.sum()
        return r.reshape([1] * x.dim()) if keep else r
    return x.mean(dim=dims, keepdim=keep) if p[0] else x.sum(dim=dims, keepdim=keep)


def unary(t, p):
    k, x = int(p[0]), t[0]
    if k == 0:
        return F.silu(x)
    if k == 1:
        return F.gelu(x)
    if k == 2:
        return x * torch.sigmoid(1.702 * x)
    if k == 3:
        return torch.exp(p[1] * x)
    return torch.clamp(x, p[1], p[2])


def slice_silu(t, p):
    return F.silu(t[0].narrow(int(p[0]), int(p[1]), int(p[2])))


def ckpt(t, p):
    a, b = t
    return F.silu(a * b) + a


CASES = [
    Case("add_same", axpby, [1, 1], [IN(5, 7), IN(5, 7)]),
    Case("add_broadcast_row", axpby, [1, 1], [IN(5, 7, 11), IN(11)]),
    Case("add_broadcast_both", axpby, [1, 1], [IN(5, 1, 11), IN(1, 7, 1)]),
    Case("sub_broadcast_channel", axpby, [1, -1], [IN(2, 5, 7, 3), IN(2, 5, 1, 1)]),
    Case("axpby", axpby, [0.5, -2.5], [IN(7, 13), IN(7, 13)]),
    Case("add_strided", add_strided, [0], [IN(5, 7), IN(7, 5)]),
    Case("mul_same", lambda t, p: t[0] * t[1], [0], [IN(5, 7), IN(5, 7)]),
    Case("mul_broadcast", lambda t, p: t[0] * t[1], [0], [IN(5, 7, 11), IN(5, 1, 11)]),
    Case("scale", lambda t, p: p[0] * t[0], [-1.75], [IN(7, 11)]),
    Case("sum_all", reduce, [0, 0, 0, 0, 0, 0, 0, 0], [IN(5, 7, 11)]),
    Case("sum_dim1_keep", reduce, [0, 1, 1, 0, 0, 0, 0, 1], [IN(5, 7, 11)]),
    Case("sum_dims02", reduce, [0, 2, 0, 2, 0, 0, 0, 0], [IN(5, 7, 11)]),
    Case("mean_last", reduce, [1, 1, -1, 0, 0, 0, 0, 0], [IN(5, 7, 13)]),
    Case("mean_all", reduce, [1, 0, 0, 0, 0, 0, 0, 0], [IN(13, 11)]),
    Case("silu", unary, [0, 0, 0], [IN(5, 7, 11)]),
    Case("gelu", unary, [1, 0, 0], [IN(5, 7, 11)]),
    Case("quick_gelu", unary, [2, 0, 0], [IN(5, 7, 11)]),
    Case("exp_half", unary, [3, 0.5, 0], [IN(7, 11)]),
    Case("clamp", unary, [4, -1, 1], [IN(13, 11)]),
    Case("copy_permuted", lambda t, p: t[0].permute(2, 0, 1).contiguous(), [0], [IN(5, 7, 11)]),
    Case("reshape", lambda t, p: 2.0 * t[0].reshape(35, 11), [0], [IN(5, 7, 11)]),
    Case("permute_add", add_strided, [0], [IN(11, 13), IN(13, 11, grad=0)]),
    Case("slice_dim1", slice_silu, [1, 2, 3], [IN(5, 7, 11)]),
    Case("slice_last", slice_silu, [2, 4, 5], [IN(5, 7, 11)]),
    Case("concat_dim1", lambda t, p: torch.cat([t[0], t[1]], dim=1), [1],
         [IN(2, 5, 3, 3), IN(2, 7, 3, 3)]),
    Case("concat_last", lambda t, p: torch.cat([t[0], t[1]], dim=-1), [-1], [IN(5, 7), IN(5, 11)]),
    Case("checkpoint", ckpt, [0], [IN(5, 7), IN(5, 7)]),
]
