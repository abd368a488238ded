"""Oracle cases for the attention family; names and params mirror tests/cases_attention.c.

Reference: multi-head scaled dot-product attention as the SD / LDM CrossAttention computes it
(heads split along the feature dim, scale applied after q k^T, softmax over keys), with the
CLIP causal mask (key j > query i masked out), in float64.
params: [heads, scale, causal, C of the fused QKV input]
"""
import torch

from oracle_common import Case


def IN(*shape, grad=1):
    return (tuple(shape), grad, -1.0, 1.0, 0)


def attention_ref(q, k, v, heads, scale, causal):
    B, Tq, C = q.shape
    Tk = k.shape[1]
    D = C // heads
    Dv = v.shape[2] // heads
    qh = q.reshape(B, Tq, heads, D).transpose(1, 2)  # (B, NH, Tq, D)
    kh = k.reshape(B, Tk, heads, D).transpose(1, 2)  # (B, NH, Tk, D)
    vh = v.reshape(B, Tk, heads, Dv).transpose(1, 2)  # (B, NH, Tk, Dv)
    s = torch.matmul(qh, kh.transpose(-1, -2)) * scale
    if causal:
        mask = torch.ones(Tq, Tk, dtype=torch.bool).triu(1)
        s = s.masked_fill(mask, float("-inf"))
    p = s.softmax(dim=-1)
    o = torch.matmul(p, vh)  # (B, NH, Tq, Dv)
    return o.transpose(1, 2).reshape(B, Tq, heads * Dv)


def attention(t, p):
    return attention_ref(t[0], t[1], t[2], int(p[0]), p[1], bool(p[2]))


def attention_fused(t, p):
    C = int(p[3])
    x = t[0]
    q, k, v = x[:, :, :C], x[:, :, C:2 * C], x[:, :, 2 * C:3 * C]
    return attention_ref(q, k, v, int(p[0]), p[1], bool(p[2]))


CASES = [
    Case("attention_self", attention, [2, 0.4472135954999579, 0],
         [IN(2, 13, 10), IN(2, 13, 10), IN(2, 13, 10)]),
    Case("attention_cross", attention, [2, 0.4082482904638631, 0],
         [IN(2, 11, 12), IN(2, 7, 12), IN(2, 7, 8)]),
    Case("attention_causal", attention, [3, 0.5, 1],
         [IN(2, 11, 12), IN(2, 11, 12), IN(2, 11, 12)]),
    Case("attention_single_head_odd", attention, [1, 0.3779644730092272, 0],
         [IN(1, 13, 7), IN(1, 13, 7), IN(1, 13, 7)]),
    Case("attention_fused_qkv", attention_fused, [2, 0.4472135954999579, 0, 10],
         [IN(2, 13, 30)]),
    Case("attention_fused_causal", attention_fused, [2, 0.4472135954999579, 1, 10],
         [IN(2, 7, 30)]),
    Case("attention_scale", attention, [2, 0.9, 0],
         [IN(1, 7, 6), IN(1, 5, 6), IN(1, 5, 10)]),
    Case("attention_kv_grad_only", attention, [2, 0.4082482904638631, 0],
         [IN(2, 11, 12, grad=0), IN(2, 7, 12), IN(2, 7, 8)]),
]
