"""Loads a file ti-merge wrote with real torch and compares every term with its source file,
also loaded with real torch (tests/test_merge_python.c runs it).

    python3 tests/merge_torch_check.py MERGED A1111_OUT TERM...

TERM is placeholder:token:source:key - the merged term `placeholder` must carry token id
`token` and the vectors stored under `key` in `source` (a1111/legacy: string_to_param[key];
peer: string_to_param (a ParameterDict) [key]; diffusers .bin: source[key], 1-D made [1, dim];
kohya .pt: emb_params), bit for bit in float32. MERGED is loaded as rinongal's
EmbeddingManager.load does (plain torch.load): string_to_param an nn.ParameterDict of
Parameters in merge order, string_to_token 0-d int64 tensors. A1111_OUT (ti-merge --format
a1111 of one term) must load with torch.load(weights_only=True).
Exit status: 0 ok, 1 a check failed, 77 python3-torch is missing (the C test reports SKIP).
"""
import sys

try:
    import torch
except ImportError as e:
    print("SKIP: python3-torch is not available (%s)" % e)
    sys.exit(77)

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def source_vectors(path, key):
    d = torch.load(path, map_location="cpu")
    if "string_to_param" in d:
        p = d["string_to_param"]
        p = getattr(p, "_parameters", p)
        t = p[key]
    elif "emb_params" in d:
        t = d["emb_params"]
    else:
        t = d[key]
    t = t.detach().float()
    return t.unsqueeze(0) if t.dim() == 1 else t


merged, a1111 = sys.argv[1], sys.argv[2]
terms = [a.split(":", 3) for a in sys.argv[3:]]
m = torch.load(merged, map_location="cpu")
check(set(m.keys()) == {"string_to_token", "string_to_param"}, "merged keys %s" % list(m.keys()))
s2p, s2t = m["string_to_param"], m["string_to_token"]
check(isinstance(s2p, torch.nn.ParameterDict), "string_to_param is a %s" % type(s2p))
check(list(s2p.keys()) == [t[0] for t in terms], "placeholders %s" % list(s2p.keys()))
for ph, tok, src, key in terms:
    p = s2p[ph]
    check(isinstance(p, torch.nn.Parameter) and p.dtype == torch.float32, "%s is a Parameter" % ph)
    want = source_vectors(src, key)
    check(p.shape == want.shape and torch.equal(p.detach().view(torch.int32),
                                                 want.view(torch.int32)),
          "%s: vectors differ from %s[%s]" % (ph, src, key))
    t = s2t[ph]
    check(torch.is_tensor(t) and t.dim() == 0 and t.dtype == torch.int64 and int(t) == int(tok),
          "%s: token %s, expected %s" % (ph, t, tok))
a = torch.load(a1111, map_location="cpu", weights_only=True)
check(list(a["string_to_param"].keys()) == ["*"] and a["string_to_param"]["*"].dim() == 2,
      "a1111 output under weights_only")
print("ok: %d terms" % len(terms) if not failures else "%d failures" % len(failures))
sys.exit(1 if failures else 0)
