#!/usr/bin/env bash
# demo.sh - `make demo`: textual inversion, shown to work offline in minutes on a CPU.
#
#   scripts/demo.sh [BUILD]        (make demo builds BUILD = build first)
#
# The shipped tiny text-to-image model (models/tiny-sd, trained from scratch by ti's own engine,
# docs/DEMO.md) can draw teal objects but was never told the word: in its data set their
# captions say no colour. The demo
#   1. generates 5 images of teal objects (ti-shapes generate --concept teal),
#   2. teaches the model a new word "*" for them (ti-train, init word "green", the training
#      captions framed by the model's templates.txt: the sentences it was trained on),
#   3. samples N images of "a photo of *" and N of "a photo of green" with fixed seeds
#      (ti-sample; DDIM, classifier-free guidance),
#   4. counts the teal objects in both with the rule-based classifier (ti-shapes count),
#   5. prints both rates, the times and a preview grid (learned word beside the init word),
# and exits 1 when "*" shows the concept in fewer than DEMO_MIN_RATE % of the samples or the
# init word alone in more than DEMO_MAX_BASELINE % (the bars of docs/DEMO.md).
#
# Environment (defaults in brackets): DEMO_MODEL [models/tiny-sd] (config.yaml +
# model.safetensors, and templates.txt when present: ti-train --templates), DEMO_STEPS [the
# model's demo_steps file when present (models/tiny-ldm: 2000), else 1000] training steps, DEMO_SAMPLES [100] per prompt, DEMO_DDIM_STEPS [20], DEMO_SCALE [7.5]
# guidance (SD's usual), DEMO_VECTORS [1] vectors per token,
# DEMO_CONCEPT [teal] (or heart: the data set's other unnamed concept, init word "object"),
# DEMO_INIT [green for teal, object for heart] the init word, DEMO_SEED [2026] the seed of the
# concept images and of ti-train, DEMO_LR [the config's] model.base_learning_rate,
# DEMO_MIN_RATE [90], DEMO_MAX_BASELINE [20], DEMO_CHECK_RATES [1] (0: report the rates but
# judge only that every step ran: the test suite's short form), DEMO_OUT [logs/demo-<time>].
set -euo pipefail

BUILD=${1:-build}
BIN="$BUILD/bin"
MODEL=${DEMO_MODEL:-models/tiny-sd}
# a model folder may say how many steps its word needs (one whole number in demo_steps)
MODEL_STEPS=1000
if [ -f "$MODEL/demo_steps" ]; then
    MODEL_STEPS=$(tr -d ' \n' < "$MODEL/demo_steps")
fi
STEPS=${DEMO_STEPS:-$MODEL_STEPS}
case "$STEPS" in '' | *[!0-9]*) echo "demo: training steps: expected a whole number, got '$STEPS'" >&2; exit 1 ;; esac
N=${DEMO_SAMPLES:-100}
DDIM=${DEMO_DDIM_STEPS:-20}
SCALE=${DEMO_SCALE:-7.5}
VECTORS=${DEMO_VECTORS:-1}
MIN_RATE=${DEMO_MIN_RATE:-90}
MAX_BASE=${DEMO_MAX_BASELINE:-20}
CHECK=${DEMO_CHECK_RATES:-1}
OUT=${DEMO_OUT:-}
if [ -z "$OUT" ]; then # a fresh folder, even for two demos started in the same second
    base=logs/demo-$(date +%Y%m%dT%H%M%S)
    OUT=$base
    mkdir -p logs
    k=1
    until mkdir "$OUT" 2>/dev/null; do
        [ "$k" -lt 100 ] || { echo "demo: cannot create a folder $base-N under logs/" >&2; exit 1; }
        OUT=$base-$k
        k=$((k + 1))
    done
fi
CONCEPT=${DEMO_CONCEPT:-teal}
case "$CONCEPT" in
teal) INIT=${DEMO_INIT:-green} COUNT="--colour teal" ;;
heart) INIT=${DEMO_INIT:-object} COUNT="--shape heart" ;;
*) echo "demo: DEMO_CONCEPT: expected teal or heart, got '$CONCEPT'" >&2; exit 1 ;;
esac
SEED=${DEMO_SEED:-2026}
LR=${DEMO_LR:-}
TEMPLATES=
[ -f "$MODEL/templates.txt" ] && TEMPLATES="$MODEL/templates.txt"

die() { echo "demo: $*" >&2; exit 1; }
for t in ti-shapes ti-train ti-sample; do
    [ -x "$BIN/$t" ] || die "$BIN/$t not found: build first (make demo does)"
done
[ -f "$MODEL/config.yaml" ] && [ -f "$MODEL/model.safetensors" ] ||
    die "$MODEL/config.yaml and $MODEL/model.safetensors expected (the shipped tiny model)"
case "$N" in '' | *[!0-9]*) die "DEMO_SAMPLES: expected a whole number, got '$N'" ;; esac
[ "$N" -ge 1 ] || die "DEMO_SAMPLES: expected at least 1"
mkdir -p "$OUT"
phase_start=0
phase() { phase_start=$(date +%s.%N); echo; echo "== $*"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
phase_end() { echo "   ($(since "$phase_start") s)"; }
t0=$(date +%s.%N)

phase "1. five images of the held-out concept ($CONCEPT) -> $OUT/photos"
"$BIN/ti-shapes" generate --out "$OUT/photos" --n 5 --seed "$SEED" --concept "$CONCEPT"
phase_end

phase "2. ti-train: a new word '*' for them (init word '$INIT', $STEPS steps)"
"$BIN/ti-train" --base "$MODEL/config.yaml" -t --actual_resume "$MODEL/model.safetensors" \
    --data_root "$OUT/photos" --init_word "$INIT" -n demo -l "$OUT/logs" -s "$SEED" \
    --max_steps "$STEPS" --no-test ${TEMPLATES:+--templates "$TEMPLATES"} \
    ${LR:+"model.base_learning_rate=$LR"} \
    "model.params.personalization_config.params.num_vectors_per_token=$VECTORS" \
    lightning.callbacks.image_logger.params.disabled=true
EMB=$(ls -d "$OUT"/logs/*/checkpoints/embeddings.pt 2>/dev/null | head -1)
[ -n "$EMB" ] || die "ti-train wrote no checkpoints/embeddings.pt under $OUT/logs"
phase_end

# n_samples per batch: up to 20, dividing N
bs=20
while [ $((N % bs)) -ne 0 ]; do bs=$((bs - 1)); done
sample() { # outdir prompt [embedding]
    local out=$1 prompt=$2
    shift 2
    "$BIN/ti-sample" --ckpt "$MODEL/model.safetensors" --config "$MODEL/config.yaml" "$@" \
        --prompt "$prompt" --H 64 --W 64 --n_samples "$bs" --n_iter $((N / bs)) --n_rows 10 \
        --ddim_steps "$DDIM" --scale "$SCALE" --seed 1000 --outdir "$out" > "$out.log" 2>&1 ||
        { cat "$out.log" >&2; die "ti-sample failed (log: $out.log)"; }
}
phase "3. ti-sample: $N images of 'a photo of *' and $N of 'a photo of $INIT' (seeds 1000..)"
sample "$OUT/learned" "a photo of *" --embedding_path "$EMB"
sample "$OUT/init" "a photo of $INIT"
phase_end

phase "4. the classifier counts the concept ($CONCEPT)"
# shellcheck disable=SC2086 # COUNT is two words
learned=$("$BIN/ti-shapes" count $COUNT "$OUT"/learned/samples/*.png)
# shellcheck disable=SC2086
base=$("$BIN/ti-shapes" count $COUNT "$OUT"/init/samples/*.png)
echo "   'a photo of *':       $learned"
echo "   'a photo of $INIT':  $base"
"$BIN/ti-shapes" montage "$OUT/preview.png" "$OUT/learned/grid-0000.png" "$OUT/init/grid-0000.png"
phase_end

rate() { sed -n 's/.*(\([0-9.]*\) %).*/\1/p' <<< "$1"; }
r1=$(rate "$learned")
r0=$(rate "$base")
total=$(since "$t0")
echo
echo "demo: $CONCEPT in 'a photo of *': $r1 % (bar >= $MIN_RATE %); in 'a photo of $INIT': $r0 % (bar <= $MAX_BASE %)"
echo "demo: preview (left: the learned word, right: the init word): $OUT/preview.png"
echo "demo: $total s in all; the embedding: $EMB"
if [ "$CHECK" = 1 ]; then
    ok=$(awk -v a="$r1" -v b="$r0" -v lo="$MIN_RATE" -v hi="$MAX_BASE" 'BEGIN { print (a >= lo && b <= hi) }')
    [ "$ok" = 1 ] || die "a rate misses its bar (see docs/DEMO.md for what the shipped model can do)"
    echo "demo: both rates meet their bars"
fi
