"""Loads files written by ti with real torch and compares them with what ti meant to write.

    python3 tests/io_torch_check.py DIR

DIR holds what tests/test_io_python.c wrote: expected.json, the embedding files, and each
term's vectors as raw little-endian float32 (<name>.f32). Checks:
  a1111.pt      torch.load(weights_only=True); exact keys and values (bit for bit); Python's
                zipfile finds every CRC-32 correct; AUTOMATIC1111's safe.py rules (record
                names, allowed globals) accept it
  peer.pt       plain torch.load, as rinongal's EmbeddingManager.load does: string_to_param is
                an nn.ParameterDict of Parameters, string_to_token 0-d int64 tensors; every
                term looked up the way the manager's forward does
  zip64.pt      a torch file written with zip64 records everywhere: weights_only load
  learned_embeds.safetensors  parsed by a minimal independent reader (Debian has no
                safetensors package)
Exit status: 0 ok, 1 a check failed, 77 python3-torch is missing (the C test reports SKIP).
"""
import json
import os
import pickletools
import re
import struct
import sys
import zipfile

try:
    import numpy as np
    import torch
except ImportError as e:  # the test set-up installs python3-torch; without it, SKIP
    print("SKIP: python3-torch is not available (%s)" % e)
    sys.exit(77)

d = sys.argv[1]
exp = json.load(open(os.path.join(d, "expected.json")))
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def raw(name):
    return torch.from_numpy(np.fromfile(os.path.join(d, name), dtype="<f4").copy())


def bits_equal(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))


def a1111_rules(path):
    """AUTOMATIC1111 modules/safe.py: record names and the globals its unpickler allows."""
    names_re = re.compile(r"^([^/]+)/((data/\d+)|version|(data\.pkl))$")
    allowed = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
               ("torch._utils", "_rebuild_parameter"), ("torch", "FloatStorage"),
               ("torch", "HalfStorage"), ("torch", "IntStorage"), ("torch", "LongStorage"),
               ("torch", "DoubleStorage"), ("torch", "ByteStorage"), ("torch", "BFloat16Storage")}
    with zipfile.ZipFile(path) as z:
        for n in z.namelist():
            check(names_re.match(n), "A1111 name check refuses record %r" % n)
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        for op, arg, pos in pickletools.genops(z.read(pkl)):
            if op.name == "GLOBAL":
                mod, name = arg.split(" ", 1)
                check((mod, name) in allowed, "A1111's unpickler forbids %s.%s" % (mod, name))
            check(op.name != "BINFLOAT", "a float in the pickle (weights_only on torch 1.13 refuses it)")


# ---- a1111 -------------------------------------------------------------------------------
a = exp["a1111"]
path = os.path.join(d, "a1111.pt")
with zipfile.ZipFile(path) as z:
    check(z.testzip() is None, "a1111.pt: zipfile reports a bad CRC-32")
    stem = os.path.splitext(os.path.basename(path))[0]
    check(z.namelist() == [stem + "/data.pkl", stem + "/data/0", stem + "/version"],
          "a1111.pt records: %s" % z.namelist())
a1111_rules(path)
obj = torch.load(path, weights_only=True)
check(sorted(obj.keys()) == sorted(["string_to_token", "string_to_param", "name", "step",
                                     "sd_checkpoint", "sd_checkpoint_name"]), "a1111 keys %s" % obj.keys())
check(obj["string_to_token"] == {"*": a["token"]}, "a1111 string_to_token %s" % obj["string_to_token"])
check(list(obj["string_to_param"].keys()) == ["*"], "a1111 string_to_param keys")
t = obj["string_to_param"]["*"]
want = raw("a1111.f32").reshape(a["n_vectors"], a["dim"])
check(bits_equal(t.detach(), want), "a1111 vectors differ")
check(obj["name"] == a["name"], "a1111 name %r" % obj["name"])
check(obj["step"] == a["step"] and type(obj["step"]) is int, "a1111 step %r" % obj["step"])
check(obj["sd_checkpoint"] == a["sd_checkpoint"], "a1111 sd_checkpoint %r" % obj["sd_checkpoint"])
check(obj["sd_checkpoint_name"] == a["sd_checkpoint_name"], "a1111 sd_checkpoint_name")
# diffusers' load_textual_inversion takes string_to_param['*'] from an A1111 dict
check(obj["string_to_param"]["*"].shape == (a["n_vectors"], a["dim"]), "a1111 shape")

# ---- peer ---------------------------------------------------------------------------------
p = exp["peer"]
path = os.path.join(d, "peer.pt")
with zipfile.ZipFile(path) as z:
    check(z.testzip() is None, "peer.pt: zipfile reports a bad CRC-32")
ckpt = torch.load(path, map_location="cpu")  # EmbeddingManager.load
string_to_token_dict = ckpt["string_to_token"]
string_to_param_dict = ckpt["string_to_param"]
check(isinstance(string_to_param_dict, torch.nn.ParameterDict), "peer string_to_param is %s" %
      type(string_to_param_dict))
check(list(string_to_param_dict.keys()) == [t["placeholder"] for t in p["terms"]],
      "peer placeholders %s" % list(string_to_param_dict.keys()))
for i, term in enumerate(p["terms"]):
    ph = term["placeholder"]
    tok = string_to_token_dict[ph]
    check(torch.is_tensor(tok) and tok.dtype == torch.int64 and tok.dim() == 0 and int(tok) == term["token"],
          "peer token of %r: %r" % (ph, tok))
    param = string_to_param_dict[ph]
    check(isinstance(param, torch.nn.Parameter) and param.requires_grad, "peer %r is not a trainable Parameter" % ph)
    want = raw("peer_%d.f32" % i).reshape(term["n_vectors"], term["dim"])
    check(bits_equal(param.detach(), want), "peer vectors of %r differ" % ph)
check(len(list(string_to_param_dict.parameters())) == len(p["terms"]), "peer embedding_parameters()")

# ---- zip64 records everywhere ----------------------------------------------------------------
obj = torch.load(os.path.join(d, "zip64.pt"), weights_only=True)
check(bits_equal(obj["t"], raw("zip64.f32").reshape(obj["t"].shape)), "zip64 tensor differs")
with zipfile.ZipFile(os.path.join(d, "zip64.pt")) as z:
    check(z.testzip() is None, "zip64.pt: zipfile reports a bad CRC-32")

# ---- safetensors, read without the safetensors package -----------------------------------
s = exp["diffusers"]
with open(os.path.join(d, "learned_embeds.safetensors"), "rb") as f:
    data = f.read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
check(n % 8 == 0, "safetensors header not padded to 8")
check(header.get("__metadata__") == {"format": "pt"}, "safetensors metadata %s" % header.get("__metadata__"))
ent = header[s["placeholder"]]
check(ent["dtype"] == "F32" and ent["shape"] == [s["n_vectors"], s["dim"]], "safetensors entry %s" % ent)
b, e = ent["data_offsets"]
check(8 + n + e == len(data), "safetensors buffer size")
vec = torch.from_numpy(np.frombuffer(data[8 + n + b:8 + n + e], dtype="<f4").copy())
check(bits_equal(vec, raw("diffusers.f32")), "safetensors vectors differ")

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("ok: torch %s loads ti's a1111 (weights_only), peer (plain torch.load), zip64 and "
      "safetensors files with identical values" % torch.__version__)
