"""PyTorch side of `make bench` (scripts/bench.sh): the ops of bench/bench_ops.c at the same
sizes, on the CPU in float32, timed the same way (warm-up runs, then the median of timed runs).

Usage: /usr/bin/python3 scripts/bench_torch_ops.py [--reps N] [--warmup N] [--threads N]
                                                     [--only conv|attention]
Output lines, tab-separated (the format of bench_ops):
    RESULT <op> <pass> <median ms> <GFLOP counted> <min ms> <max ms>
Attention is the unfused CompVis / LDM CrossAttention (einsum, softmax, einsum) over
(B*heads, T, d) as SD v1 runs it; its backward keeps the attention matrix, so it counts 2x the
forward FLOPs. The conv is F.conv2d (oneDNN) with a frozen weight; backward computes dx only.
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F


def timed(fn, reps, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    n = len(ts)
    med = ts[n // 2] if n % 2 else 0.5 * (ts[n // 2 - 1] + ts[n // 2])
    return med, ts[0], ts[-1]


def report(op, pas, res, gflop):
    med, lo, hi = res
    print("RESULT\t%s\t%s\t%.3f\t%.4f\t%.3f\t%.3f" % (op, pas, med, gflop, lo, hi), flush=True)


def bench_conv(reps, warmup):
    C, H, W = 320, 64, 64
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, C, H, W, generator=g) * 2 - 1
    wb = 1.0 / math.sqrt(C * 9)
    w = (torch.rand(C, C, 3, 3, generator=g) * 2 - 1) * wb
    b = (torch.rand(C, generator=g) * 2 - 1) * wb
    dout = torch.rand(1, C, H, W, generator=g) * 2 - 1
    gflop = 2.0 * C * C * 9 * H * W * 1e-9

    def fwd():
        with torch.no_grad():
            F.conv2d(x, w, b, padding=1)

    xg = x.clone().requires_grad_(True)

    def fwd_bwd():
        y = F.conv2d(xg, w, b, padding=1)
        y.backward(dout)
        xg.grad = None

    report("conv2d", "forward", timed(fwd, reps, warmup), gflop)
    report("conv2d", "forward+input-grad", timed(fwd_bwd, reps, warmup), 2 * gflop)

    # the same under CPU autocast to bfloat16 (weights and activations cast per call, f32
    # accumulation inside oneDNN): the reference for ti's bf16 goals (CPU-speed issue)
    def fwd_bf16():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            F.conv2d(x, w, b, padding=1)

    def fwd_bwd_bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = F.conv2d(xg, w, b, padding=1)
        y.float().backward(dout)
        xg.grad = None

    try:
        report("conv2d", "forward bf16-autocast", timed(fwd_bf16, reps, warmup), gflop)
        report("conv2d", "forward+input-grad bf16-autocast", timed(fwd_bwd_bf16, reps, warmup),
               2 * gflop)
    except RuntimeError as e:  # an old torch without CPU autocast
        print("conv2d bf16-autocast: unavailable (%s)" % str(e).splitlines()[0], flush=True)


def attention(q, k, v, heads, scale):
    # ldm/modules/attention.py CrossAttention.forward, without the projections
    B, T, C = q.shape
    d = C // heads

    def split(t):
        return t.reshape(B, t.shape[1], heads, d).permute(0, 2, 1, 3).reshape(B * heads, t.shape[1], d)

    qh, kh, vh = split(q), split(k), split(v)
    sim = torch.einsum("b i d, b j d -> b i j", qh, kh) * scale
    attn = sim.softmax(dim=-1)
    out = torch.einsum("b i j, b j d -> b i d", attn, vh)
    return out.reshape(B, heads, T, d).permute(0, 2, 1, 3).reshape(B, T, C)


def bench_attention(reps, warmup):
    B, T, NH, D = 1, 4096, 8, 40
    g = torch.Generator().manual_seed(11)
    q, k, v, dout = [torch.rand(B, T, NH * D, generator=g) * 2 - 1 for _ in range(4)]
    scale = 1.0 / math.sqrt(D)
    gflop = 4.0 * B * NH * T * T * D * 1e-9

    def fwd():
        with torch.no_grad():
            attention(q, k, v, NH, scale)

    qg, kg, vg = [t.clone().requires_grad_(True) for t in (q, k, v)]

    def fwd_bwd():
        y = attention(qg, kg, vg, NH, scale)
        y.backward(dout)
        qg.grad = kg.grad = vg.grad = None

    report("attention", "forward", timed(fwd, reps, warmup), gflop)
    report("attention", "forward+input-grad", timed(fwd_bwd, reps, warmup), 3 * gflop)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--only", choices=["conv", "attention"])
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    print("THREADS\t%d" % torch.get_num_threads())
    if a.only in (None, "conv"):
        bench_conv(a.reps, a.warmup)
    if a.only in (None, "attention"):
        bench_attention(a.reps, a.warmup)


if __name__ == "__main__":
    main()
