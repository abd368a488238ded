"""Shared helpers for the oracle fixture generators (scripts/oracle/*.py).

These scripts run PyTorch (and diffusers / transformers for the models) in float64 on small
random inputs and write HDF5 fixtures into tests/fixtures/. They are run once, offline, by a
developer; CI never runs them. Each fixture file's command is recorded in
tests/fixtures/README.md.

Environment used for the committed fixtures (see scripts/oracle/README.md):
  Debian python3-torch 1.13, python3-h5py, python3-numpy; a venv with
  --system-site-packages adding transformers 4.40.2 and diffusers 0.27.2 from PyPI.
"""
import h5py
import numpy as np
import torch

torch.set_default_dtype(torch.float64)


class Case:
    """One op test case; mirrors a C `struct op_case` of the same name (tests/cases_*.c).

    inputs: list of (shape, grad, lo, hi, is_index)
    fn(tensors, params) -> output tensor
    params: up to 8 floats, identical to the C case's p[] (stored as the `params` attribute).
    """

    def __init__(self, name, fn, params, inputs):
        self.name = name
        self.fn = fn
        self.params = list(params) + [0.0] * (8 - len(params))
        self.inputs = inputs


def write_cases(path, cases, seed=1234):
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.attrs["generator"] = "scripts/oracle (torch %s)" % torch.__version__
        for c in cases:
            g = f.create_group(c.name)
            g.attrs["params"] = np.array(c.params, dtype=np.float64)
            tensors = []
            for i, (shape, grad, lo, hi, is_index) in enumerate(c.inputs):
                if is_index:
                    v = rng.integers(int(lo), int(hi) + 1, size=shape).astype(np.float64)
                    t = torch.tensor(v, dtype=torch.float64)
                else:
                    v = rng.uniform(lo, hi, size=shape)
                    t = torch.tensor(v, dtype=torch.float64, requires_grad=bool(grad))
                g.create_dataset("in%d" % i, data=v)
                tensors.append(t)
            out = c.fn(tensors, c.params)
            dout = rng.uniform(-1, 1, size=tuple(out.shape))
            g.create_dataset("out", data=out.detach().numpy())
            g.create_dataset("dout", data=dout)
            if any(x.requires_grad for x in tensors):
                out.backward(torch.tensor(dout))
            for i, t in enumerate(tensors):
                if t.requires_grad:
                    gr = t.grad if t.grad is not None else torch.zeros_like(t)
                    g.create_dataset("grad%d" % i, data=gr.numpy())
    print("wrote %s (%d cases)" % (path, len(cases)))
