#!/usr/bin/env bash
# test_demo.sh BUILD - the short form of `make demo` (scripts/demo.sh): every step it runs
# (concept images, ti-train on the shipped tiny model, ti-sample of the learned word and of the
# init word, the classifier's count, the preview montage) with few steps and samples; checks the
# mechanics, not the rates (make demo itself judges those).
set -euo pipefail
BUILD=${1:?usage: test_demo.sh BUILD}
OUT=$(mktemp -d /tmp/ti_test_demo.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

DEMO_STEPS=3 DEMO_SAMPLES=4 DEMO_DDIM_STEPS=4 DEMO_CHECK_RATES=0 DEMO_OUT="$OUT/run" \
    scripts/demo.sh "$BUILD" > "$OUT/log" 2>&1 || { cat "$OUT/log"; fail "demo.sh exited non-zero"; }
[ "$(ls "$OUT"/run/photos/*.png | wc -l)" = 5 ] || fail "expected 5 concept images"
[ -f "$(ls -d "$OUT"/run/logs/*/checkpoints/embeddings_gs-2.pt)" ] || fail "no embeddings_gs-2.pt"
for d in learned init; do
    n=$(ls "$OUT/run/$d/samples/"*.png | wc -l)
    [ "$n" = 4 ] || fail "$d: expected 4 samples, got $n"
done
[ -s "$OUT/run/preview.png" ] || fail "no preview.png"
grep -q "^demo: teal in 'a photo of \*': [0-9.]* % (bar >= 90 %); in 'a photo of green': [0-9.]* %" \
    "$OUT/log" || { cat "$OUT/log"; fail "no rates line"; }
grep -q "^demo: preview" "$OUT/log" || fail "no preview line"

# the same on the LDM-family model (BERT text tower; its demo_steps file is overridden here)
DEMO_MODEL=models/tiny-ldm DEMO_STEPS=2 DEMO_SAMPLES=2 DEMO_DDIM_STEPS=2 DEMO_CHECK_RATES=0 \
    DEMO_OUT="$OUT/ldm" scripts/demo.sh "$BUILD" > "$OUT/log_ldm" 2>&1 ||
    { cat "$OUT/log_ldm"; fail "demo.sh on models/tiny-ldm exited non-zero"; }
[ -f "$(ls -d "$OUT"/ldm/logs/*/checkpoints/embeddings_gs-1.pt)" ] || fail "ldm: no embeddings_gs-1.pt"
[ "$(ls "$OUT/ldm/learned/samples/"*.png | wc -l)" = 2 ] || fail "ldm: expected 2 samples"
grep -q "^demo: teal in 'a photo of \*': [0-9.]* %" "$OUT/log_ldm" || fail "ldm: no rates line"
# the model folder's demo_steps is the default step count; a bad one is refused
mkdir -p "$OUT/m"
cp models/tiny-ldm/config.yaml models/tiny-ldm/model.safetensors "$OUT/m/"
echo "twelve" > "$OUT/m/demo_steps"
if DEMO_MODEL="$OUT/m" DEMO_OUT="$OUT/bad" scripts/demo.sh "$BUILD" > "$OUT/log_bad" 2>&1; then
    fail "demo.sh accepted demo_steps 'twelve'"
fi
grep -q "expected a whole number, got 'twelve'" "$OUT/log_bad" || { cat "$OUT/log_bad"; fail "no demo_steps message"; }
grep -q "(init word 'green', 2000 steps)" "$OUT/log_ldm" && fail "DEMO_STEPS did not override demo_steps"
echo 7 > "$OUT/m/demo_steps"
DEMO_SAMPLES=1 DEMO_DDIM_STEPS=2 DEMO_CHECK_RATES=0 DEMO_MODEL="$OUT/m" DEMO_OUT="$OUT/seven" \
    scripts/demo.sh "$BUILD" > "$OUT/log_seven" 2>&1 || { cat "$OUT/log_seven"; fail "demo_steps 7 run failed"; }
grep -q "(init word 'green', 7 steps)" "$OUT/log_seven" || { cat "$OUT/log_seven"; fail "demo_steps 7 not used"; }

# a rate below its bar makes the demo fail (exit 1): the bar at 101 % cannot be met
if DEMO_STEPS=1 DEMO_SAMPLES=1 DEMO_DDIM_STEPS=2 DEMO_MIN_RATE=101 DEMO_OUT="$OUT/run2" \
    scripts/demo.sh "$BUILD" > "$OUT/log2" 2>&1; then
    fail "demo.sh passed a rate below its bar"
fi
grep -q "a rate misses its bar" "$OUT/log2" || { cat "$OUT/log2"; fail "no bar message"; }
echo "ok: demo mechanics (5 images, training, 2 x 4 samples, count, preview; tiny-ldm; demo_steps; failing bar exits 1)"
