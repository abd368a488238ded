"""Builds the fuzzers' seed corpus (tests/fuzz/corpus/{zip,pickle,safetensors}/) from the io
fixtures. Standard library only:

    python3 scripts/oracle/fuzz_corpus.py

zip:          small torch files (zip, legacy, deflated, lightning, hostile ones)
pickle:       the data.pkl of those files, the pickles of the legacy file in a row, and a few
              hand-written ones (protocol 4 framing, memo, deep lists)
safetensors:  the safetensors fixtures (the tiny original checkpoint is left out: too big)
"""
import os
import shutil
import struct
import zipfile

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
FIX = os.path.join(ROOT, "tests", "fixtures", "io")
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")

ZIP = ["a1111_f32.pt", "a1111_f16.pt", "a1111_bf16.pt", "a1111_proto4.pt", "a1111_deflate.pt",
       "legacy_a1111.pt", "peer_dict.pt", "peer_paramdict.pt", "peer_merged.pt", "diffusers_1d.bin",
       "kohya.pt", "dtypes.pt", "noncontig.pt", "shared_offset.pt", "lightning_mini.ckpt",
       "mal_os_system.pt", "mal_posix_system_in_a1111.pt", "mal_inst_os_system.pt",
       "mal_stack_global_eval.pt"]
ST = ["learned_embeds.safetensors", "kohya.safetensors", "sdxl.safetensors"]

for sub in ["zip", "pickle", "safetensors"]:
    d = os.path.join(OUT, sub)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)

for f in ZIP:
    shutil.copy(os.path.join(FIX, f), os.path.join(OUT, "zip", f))
    path = os.path.join(FIX, f)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
            data = z.read(pkl)
    else:  # legacy: the whole file is pickles then raw storages
        data = open(path, "rb").read()
    open(os.path.join(OUT, "pickle", f.rsplit(".", 1)[0] + ".pkl"), "wb").write(data)
for f in ST:
    shutil.copy(os.path.join(FIX, f), os.path.join(OUT, "safetensors", f))


def binunicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


hand = {
    "proto4_frame_memo.pkl": b"\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94K\x01"
                             b"\x8c\x01b\x94h\x01\x8f\x94(K\x02\x90u.",
    "deep_lists.pkl": b"]" * 40 + b"a" * 39 + b".",
    "cycle.pkl": b"]q\x00h\x00a.",
    "ordereddict_items.pkl": b"\x80\x02ccollections\nOrderedDict\n]((X\x01\x00\x00\x00kK\x01t"
                             b"ae\x85R.",
    "two_pickles.pkl": b"\x80\x02K\x01.\x80\x02" + binunicode("x") + b".",
}
for name, data in hand.items():
    open(os.path.join(OUT, "pickle", name), "wb").write(data)

total = 0
for sub in ["zip", "pickle", "safetensors"]:
    n = len(os.listdir(os.path.join(OUT, sub)))
    size = sum(os.path.getsize(os.path.join(OUT, sub, f)) for f in os.listdir(os.path.join(OUT, sub)))
    total += size
    print("%-12s %3d files %7d bytes" % (sub, n, size))
print("total %d bytes" % total)
