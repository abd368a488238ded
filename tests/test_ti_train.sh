#!/bin/bash
# test_ti_train.sh - ti-train end to end on the tiny SD / LDM configs (random weights made by
# make_tiny_ckpt), on the CPU. One mode per ctest entry (tests/train.cmake):
#   e2e      SD and LDM runs: embedding files at the PL 1.5 steps (ti-peer.md §1.6), image grids
#            at the image logger's steps with the peer's names (§5.4), configs, metrics rows
#   determ   same seed -> bit-identical embedding files; another seed -> different;
#            SIGINT at step k then --resume -> bit-identical to the uninterrupted run
#   kill9    kill -9 at 20 random moments (resuming in between): every embeddings*.pt, resume
#            state and metrics file on disk is complete
#   dryrun   --dry_run: EXIF-rotated input comes out upright at the training size, captions
#   bad      bad inputs: a clear message, a non-zero exit (never a crash), no run folder
#   torch    (label python) the embedding files load in real torch with weights_only=True
#   mpi      mpirun -np 2 with batch 1 each == one process with batch 2 (same samples; f32
#            tolerance); MPIEXEC (5th argument) empty: SKIP
# Usage: bash tests/test_ti_train.sh MODE TI_TRAIN MAKE_TINY_CKPT TI_INSPECT [MPIEXEC]  (repo root)
# Exit: 0 pass, 1 fail, 77 skip (a check that needs python3 + PIL/h5py/torch that is missing).
set -u
MODE=${1:?mode}
TT=${2:?ti-train}
MK=${3:?make_tiny_ckpt}
INSPECT=${4:?ti-inspect}
MPIEXEC=${5:-}
FIX=tests/fixtures/train
# one thread: the tiny model gains nothing from more, and on a loaded machine OpenMP spinning
# costs 4x
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ti_train_test.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
fails=0
checks=0
skipped=""

ok() { checks=$((checks + 1)); }
bad() {
    checks=$((checks + 1))
    fails=$((fails + 1))
    echo "FAIL: $*" >&2
}
check() { # check DESCRIPTION test-args...
    local d=$1
    shift
    if "$@"; then ok; else bad "$d"; fi
}

# python with a module, or empty
py_with() {
    for p in ${TI_PYTHON:-} /usr/bin/python3 /opt/oracle-venv/bin/python; do
        [ -x "$p" ] && "$p" -c "import $1" 2>/dev/null && {
            echo "$p"
            return
        }
    done
}

SD_CFG=configs/tiny/sd-tiny-finetune.yaml
LDM_CFG=configs/tiny/ldm-tiny-finetune.yaml
# small frequencies: checkpoints after steps 1, 3 (+ the last, 5), images at steps 2 and 4
SMALL="lightning.modelcheckpoint.params.every_n_train_steps=2
lightning.callbacks.image_logger.params.batch_frequency=2 data.params.train.params.repeats=2
lightning.callbacks.image_logger.params.log_images_kwargs.ddim_steps=4"

"$MK" "$SD_CFG" "$TMP/sd.safetensors" 11 || exit 1
needs_ldm() { [ -f "$TMP/ldm.safetensors" ] || "$MK" "$LDM_CFG" "$TMP/ldm.safetensors" 12 || exit 1; }

# train DIR [args...]: a 6-step run of the tiny SD model into DIR (logdir), quiet
train() {
    local dir=$1
    shift
    # shellcheck disable=SC2086
    "$TT" --base "$SD_CFG" -t --actual_resume "$TMP/sd.safetensors" --data_root "$FIX/imgs" \
        -l "$dir" -n run --max_steps 6 --quiet $SMALL "$@"
}
rundir() { ls -d "$1"/*/ 2>/dev/null | head -n 1 | sed 's:/$::'; }

case "$MODE" in
e2e)
    train "$TMP/l1" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "e2e SD exit status $rc (stderr: $(tail -n 3 "$TMP/err"))" [ $rc -eq 0 ]
    # the peer's LR line: 1 * 1 * 2 * 5e-3
    check "LR line" grep -qx "Setting learning rate to 1.00e-02 = 1 (accumulate_grad_batches) \* 1 (num_gpus) \* 2 (batchsize) \* 5.00e-03 (base_lr)" "$TMP/out"
    # main.py's line per split: 4 images * 2 repeats; validation (set: val) ignores repeats
    check "dataset lines" bash -c "grep -qx 'train, PersonalizedBase, 8' '$TMP/out' && grep -qx 'validation, PersonalizedBase, 4' '$TMP/out'"
    R=$(rundir "$TMP/l1")
    check "run folder name <data stem><date>_run" bash -c "basename '$R' | grep -Eq '^imgs[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}_run$'"
    now=$(basename "$R" | sed 's/_run$//')
    check "project config" [ -f "$R/configs/$now-project.yaml" ]
    check "lightning config" [ -f "$R/configs/$now-lightning.yaml" ]
    check "data_root in the saved config" grep -q "imgs" "$R/configs/$now-project.yaml"
    # every_n_train_steps 2: global steps 1, 3; train end: max_steps - 1 = 5
    want="embeddings.pt embeddings_gs-1.pt embeddings_gs-3.pt embeddings_gs-5.pt"
    got=$(cd "$R/checkpoints" && ls embeddings*.pt | sort | tr '\n' ' ' | sed 's/ $//')
    check "embedding files '$got' != '$want'" [ "$got" = "$want" ]
    check "no .ckpt of the frozen model" bash -c "! ls '$R'/checkpoints/*.ckpt >/dev/null 2>&1"
    for f in "$R"/checkpoints/embeddings*.pt; do
        check "ti-inspect reads $f" "$INSPECT" "$f" >/dev/null
    done
    # same content (the zip's folder name is the file stem, so the bytes differ there)
    same_emb() { cmp -s <("$INSPECT" --json "$1" | grep -v '"file"\|"archive"') <("$INSPECT" --json "$2" | grep -v '"file"\|"archive"'); }
    check "embeddings.pt == the last gs file" same_emb "$R/checkpoints/embeddings.pt" "$R/checkpoints/embeddings_gs-5.pt"
    check "the step is recorded" bash -c "'$INSPECT' --json '$R/checkpoints/embeddings_gs-3.pt' | grep -q '\"step\": 3'"
    # images at global steps 2 and 4; dataset length 4 images * 2 repeats = 8, batch 2:
    # step 2 = samples 4,5 (epoch 0, batch 2), step 4 = samples 8,9 (epoch 1, batch 0)
    for k in inputs reconstruction conditioning samples samples_scaled; do
        check "$k grid step 2" [ -s "$R/images/train/${k}_gs-000002_e-000000_b-000002.jpg" ]
        check "$k grid step 4" [ -s "$R/images/train/${k}_gs-000004_e-000001_b-000000.jpg" ]
    done
    n_img=$(ls "$R/images/train" | wc -l)
    check "10 grids, found $n_img" [ "$n_img" -eq 10 ]
    # validation (§5.4): PL validates at each epoch end (8 samples / batch 2 = 4 steps), and the
    # logger writes when global_step (then 4) is a multiple of batch_frequency (2): the val split
    # is the 4 images once, in batches of 2 -> batches 0 and 1 of epoch 0; at step 8 (the next
    # epoch end) the run has stopped
    for k in inputs reconstruction conditioning samples samples_scaled; do
        for b in 0 1; do
            check "val $k grid batch $b" [ -s "$R/images/val/${k}_gs-000004_e-000000_b-00000$b.jpg" ]
        done
    done
    n_val=$(ls "$R/images/val" 2>/dev/null | wc -l)
    check "10 val grids, found $n_val" [ "$n_val" -eq 10 ]
    # conditioning: the captions drawn black on white (tiny SD: 2 tiles of 64 px + make_grid's
    # grey border), so the grid holds near-black text pixels and mostly near-white paper
    PY=$(py_with PIL)
    if [ -n "$PY" ]; then
        check "conditioning grid is text on white" "$PY" - "$R/images/train/conditioning_gs-000002_e-000000_b-000002.jpg" <<'EOF'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("L")
w, h = im.size
px = list(im.getdata())
dark = sum(p < 60 for p in px)
light = sum(p > 200 for p in px)
assert (w, h) == (2 * 64 + 3 * 2, 64 + 2 * 2), (w, h)
assert dark > 20 and light > 0.5 * len(px), (dark, light, len(px))
EOF
    else
        skipped="$skipped conditioning-pixels(no python3 PIL)"
    fi
    check "loss plot" [ -s "$R/loss.png" ]
    PY=$(py_with h5py)
    if [ -f "$R/metrics.h5" ] && [ -n "$PY" ]; then
        check "metrics.h5 has one row per step" "$PY" - "$R/metrics.h5" <<'EOF'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
n = {k: f[k].shape for k in ("step", "loss", "lr", "embedding_norm")}
assert all(s == (6,) for s in n.values()), n
assert list(f["step"][:]) == [0, 1, 2, 3, 4, 5], f["step"][:]
assert np.all(np.isfinite(f["loss"][:])) and np.all(f["loss"][:] > 0)
assert np.allclose(f["lr"][:], 1e-2)
assert f["step"].maxshape == (None,)
EOF
    elif [ -f "$R/metrics.csv" ]; then
        check "metrics.csv has one row per step" [ "$(wc -l <"$R/metrics.csv")" -eq 7 ]
    else
        skipped="$skipped metrics.h5(no python3 h5py)"
    fi
    # --lr_scheduler linear with 2 warm-up steps over 6: diffusers' multipliers 0, 1/2 (warm-up
    # from 0), then (6 - s) / 4 = 1, 3/4, 1/2, 1/4 of 1e-2; step 0 at LR 0 leaves the vectors
    train "$TMP/ls" --lr_scheduler linear --lr_warmup_steps 2 >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "--lr_scheduler run exit status $rc ($(tail -n 2 "$TMP/err"))" [ $rc -eq 0 ]
    check "--lr_scheduler start-up line" grep -qx "LR schedule: linear over 6 steps, 2 warm-up (--lr_scheduler)" "$TMP/out"
    RS=$(rundir "$TMP/ls")
    if [ -f "$RS/metrics.h5" ] && [ -n "$PY" ]; then
        check "--lr_scheduler linear: the LR of each step" "$PY" - "$RS/metrics.h5" <<'EOF2'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
want = np.array([0, 0.5, 1, 0.75, 0.5, 0.25]) * 1e-2
assert np.allclose(f["lr"][:], want, rtol=1e-12, atol=0), f["lr"][:]
n = f["embedding_norm"][:]
assert n[1] != n[0], n
EOF2
    fi
    # LDM (BERT text encoder, 1280 -> tiny width)
    needs_ldm
    "$TT" --base "$LDM_CFG" -t --actual_resume "$TMP/ldm.safetensors" --data_root "$FIX/imgs" \
        -l "$TMP/l2" --max_steps 4 --quiet $SMALL >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "e2e LDM exit status $rc (stderr: $(tail -n 3 "$TMP/err"))" [ $rc -eq 0 ]
    R=$(rundir "$TMP/l2")
    check "LDM run folder named after the config" bash -c "basename '$R' | grep -q '_ldm-tiny-finetune$'"
    got=$(cd "$R/checkpoints" 2>/dev/null && ls embeddings*.pt | sort | tr '\n' ' ' | sed 's/ $//')
    check "LDM embedding files '$got'" [ "$got" = "embeddings.pt embeddings_gs-1.pt embeddings_gs-3.pt" ]
    # unfreeze_model (pivotal tuning): the model weights are saved with the embeddings
    train "$TMP/l4" --max_steps 2 model.params.unfreeze_model=true model.params.model_lr=0.001 \
        >/dev/null 2>"$TMP/err"
    rc=$?
    check "unfreeze_model run exit status $rc ($(tail -n 2 "$TMP/err"))" [ $rc -eq 0 ]
    R=$(rundir "$TMP/l4")
    check "unfreeze_model saves the model" "$INSPECT" "$R/checkpoints/model.safetensors" >/dev/null
    check "the saved model was trained (differs from the input)" bash -c "! cmp -s '$TMP/sd.safetensors' '$R/checkpoints/model.safetensors'"
    # lightning.trainer.max_epochs: PL stops at whichever limit comes first. 4 images * 2
    # repeats = 8 samples, batch 2: 4 steps an epoch, so max_epochs 1 ends after step 3 (the last
    # save at global step 3), before --max_steps 6
    train "$TMP/l5" lightning.trainer.max_epochs=1 >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "max_epochs run exit status $rc ($(tail -n 2 "$TMP/err"))" [ $rc -eq 0 ]
    R=$(rundir "$TMP/l5")
    got=$(cd "$R/checkpoints" 2>/dev/null && ls embeddings*.pt | sort | tr '\n' ' ' | sed 's/ $//')
    check "max_epochs 1 embedding files '$got'" [ "$got" = "embeddings.pt embeddings_gs-1.pt embeddings_gs-3.pt" ]
    check "max_epochs 1: 4 steps" grep -q "^done: 4 steps" "$TMP/out"
    # --accumulate_grad_batches 2: PL calls the image logger after every micro-batch and both
    # micro-batches of step 2 see global_step 2, so both log (batch_idx 0 and 1 of epoch 1:
    # samples 8..11 of 8 per epoch)
    train "$TMP/l8" --max_steps 3 --accumulate_grad_batches 2 >/dev/null 2>"$TMP/err"
    rc=$?
    check "accumulate 2 run: exit status $rc ($(tail -n 2 "$TMP/err"))" [ $rc -eq 0 ]
    R=$(rundir "$TMP/l8")
    for b in 0 1; do
        check "accumulate 2: inputs of micro-batch $b" [ -s "$R/images/train/inputs_gs-000002_e-000001_b-00000$b.jpg" ]
    done
    # continuing from an a1111 file (string_to_param key '*', string_to_token = the run's
    # placeholder id) with the same --placeholder_string: the peer substitutes by the stored
    # token id, so the file's vectors stand for 'cat' and keep training under that name (the
    # peer format keeps the placeholder as the key)
    train "$TMP/l6" --max_steps 1 --placeholder_string cat >/dev/null 2>"$TMP/err"
    E6=$(ls "$(rundir "$TMP/l6")"/checkpoints/embeddings.pt)
    train "$TMP/l7" --max_steps 1 --placeholder_string cat --embedding_manager_ckpt "$E6" \
        --format peer >/dev/null 2>"$TMP/err"
    rc=$?
    check "continue from an a1111 file: exit status $rc ($(tail -n 2 "$TMP/err"))" [ $rc -eq 0 ]
    R=$(rundir "$TMP/l7")
    check "continued run keeps the placeholder 'cat'" bash -c "'$INSPECT' '$R/checkpoints/embeddings.pt' | grep -q \"term 'cat'\""
    # --format peer and diffusers
    train "$TMP/l3" --format diffusers --max_steps 2 >/dev/null 2>"$TMP/err"
    R=$(rundir "$TMP/l3")
    check "diffusers format files" [ -s "$R/checkpoints/embeddings_gs-1.safetensors" ]
    check "ti-inspect reads the diffusers file" "$INSPECT" "$R/checkpoints/embeddings.safetensors" >/dev/null
    ;;
determ)
    train "$TMP/a" >/dev/null 2>"$TMP/err" || bad "run a: $(tail -n 2 "$TMP/err")"
    train "$TMP/b" >/dev/null 2>"$TMP/err" || bad "run b: $(tail -n 2 "$TMP/err")"
    train "$TMP/c" --seed 24 >/dev/null 2>"$TMP/err" || bad "run c: $(tail -n 2 "$TMP/err")"
    A=$(rundir "$TMP/a")
    B=$(rundir "$TMP/b")
    C=$(rundir "$TMP/c")
    for f in embeddings_gs-1.pt embeddings_gs-3.pt embeddings_gs-5.pt embeddings.pt; do
        check "same seed, $f identical" cmp -s "$A/checkpoints/$f" "$B/checkpoints/$f"
    done
    check "another seed differs" bash -c "! cmp -s '$A/checkpoints/embeddings.pt' '$C/checkpoints/embeddings.pt'"
    # SIGINT after step 2 (the tool's test hook raises it), then --resume
    TI_TRAIN_RAISE_SIGINT_AT=2 train "$TMP/d" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "interrupted run exits 130, got $rc" [ $rc -eq 130 ]
    check "interrupt message says how to resume" grep -q "ti-train --resume" "$TMP/err"
    D=$(rundir "$TMP/d")
    check "interrupt wrote embeddings_gs-2.pt" [ -s "$D/checkpoints/embeddings_gs-2.pt" ]
    check "no files of later steps" [ ! -e "$D/checkpoints/embeddings_gs-3.pt" ]
    # from another working folder: the run's relative paths still resolve
    TT_ABS="$(cd "$(dirname "$TT")" && pwd)/$(basename "$TT")"
    D_REL=$(realpath --relative-to="$TMP" "$D")
    (cd "$TMP" && "$TT_ABS" --resume "$D_REL" --quiet) >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "resume exit status $rc ($(tail -n 2 "$TMP/err"))" [ $rc -eq 0 ]
    for f in embeddings_gs-3.pt embeddings_gs-5.pt embeddings.pt; do
        check "resumed $f == uninterrupted" cmp -s "$A/checkpoints/$f" "$D/checkpoints/$f"
    done
    PY=$(py_with h5py)
    if [ -n "$PY" ] && [ -f "$A/metrics.h5" ]; then
        check "resumed metrics == uninterrupted" "$PY" - "$A/metrics.h5" "$D/metrics.h5" <<'EOF'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
for k in ("step", "loss", "lr", "embedding_norm"):
    assert np.array_equal(a[k][:], b[k][:]), (k, a[k][:], b[k][:])
EOF
    fi
    # a real SIGTERM from outside, once the first checkpoint exists: exit 143, then --resume
    "$TT" --base "$SD_CFG" -t --actual_resume "$TMP/sd.safetensors" --data_root "$FIX/imgs" \
        -l "$TMP/e" -n run --quiet $SMALL --max_steps 6 >/dev/null 2>"$TMP/err" &
    pid=$!
    for _ in $(seq 1 400); do
        ls "$TMP"/e/*/checkpoints/embeddings_gs-1.pt >/dev/null 2>&1 && break
        sleep 0.05
    done
    kill -TERM $pid 2>/dev/null
    wait $pid
    rc=$?
    E=$(rundir "$TMP/e")
    if [ $rc -eq 143 ]; then
        check "SIGTERM message" grep -q "terminated: stopped after step" "$TMP/err"
        "$TT" --resume "$E" --quiet >/dev/null 2>"$TMP/err"
        check "resume after SIGTERM ($(tail -n 2 "$TMP/err"))" [ $? -eq 0 ]
        check "SIGTERM + resume == uninterrupted" cmp -s "$A/checkpoints/embeddings_gs-5.pt" "$E/checkpoints/embeddings_gs-5.pt"
    else
        check "SIGTERM run: exit 143 or (finished first) 0, got $rc" [ $rc -eq 0 ]
        echo "note: the run finished before SIGTERM arrived; the SIGTERM path was not exercised"
    fi
    # a target at or below the step reached: refused, the run untouched (it used to rewind it)
    ls -l --time-style=full-iso "$D/checkpoints" >"$TMP/before"
    "$TT" --resume "$D" --max_steps 4 >/dev/null 2>"$TMP/err"
    rc=$?
    check "resume below the step reached exits 2, got $rc" [ $rc -eq 2 ]
    check "resume below: message" grep -q "already at step 6 and its target is 4 steps" "$TMP/err"
    ls -l --time-style=full-iso "$D/checkpoints" >"$TMP/after"
    check "resume below: the run's files unchanged" cmp -s "$TMP/before" "$TMP/after"
    # a cosine schedule continues exactly too (the LR depends on the step and --max_steps)
    train "$TMP/cs" --lr_scheduler cosine --lr_warmup_steps 1 >/dev/null 2>"$TMP/err" ||
        bad "cosine run: $(tail -n 2 "$TMP/err")"
    TI_TRAIN_RAISE_SIGINT_AT=3 train "$TMP/ci" --lr_scheduler cosine --lr_warmup_steps 1 \
        >/dev/null 2>"$TMP/err"
    rc=$?
    check "cosine run interrupted: exit 130, got $rc" [ $rc -eq 130 ]
    "$TT" --resume "$(rundir "$TMP/ci")" --quiet >/dev/null 2>"$TMP/err"
    rc=$?
    check "cosine run resumed ($(tail -n 2 "$TMP/err"))" [ $rc -eq 0 ]
    check "cosine: resumed == uninterrupted" cmp -s "$(rundir "$TMP/cs")/checkpoints/embeddings_gs-5.pt" "$(rundir "$TMP/ci")/checkpoints/embeddings_gs-5.pt"
    check "cosine differs from the constant LR" bash -c "! cmp -s '$A/checkpoints/embeddings_gs-5.pt' '$(rundir "$TMP/cs")/checkpoints/embeddings_gs-5.pt'"
    "$TT" --resume "$(rundir "$TMP/ci")" --lr_scheduler linear >/dev/null 2>"$TMP/err"
    rc=$?
    check "--lr_scheduler with --resume exits 2, got $rc" [ $rc -eq 2 ]
    # a non-finite loss at step 3: reported, that step skipped (the vectors do not move)
    TI_TRAIN_TEST_NAN_AT=3 train "$TMP/n" >/dev/null 2>"$TMP/err"
    rc=$?
    check "NaN run exit status $rc" [ $rc -eq 0 ]
    check "NaN reported" grep -q "step 3: non-finite loss" "$TMP/err"
    N=$(rundir "$TMP/n")
    same_emb() { cmp -s <("$INSPECT" --json "$1" | grep -v '"file"\|"archive"\|"step"') <("$INSPECT" --json "$2" | grep -v '"file"\|"archive"\|"step"'); }
    check "steps before the NaN are unchanged" same_emb "$A/checkpoints/embeddings_gs-1.pt" "$N/checkpoints/embeddings_gs-1.pt"
    if [ -n "$PY" ] && [ -f "$N/metrics.h5" ]; then
        check "NaN step skipped: the norm does not move at step 3" "$PY" - "$N/metrics.h5" <<'EOF'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
loss, norm = f["loss"][:], f["embedding_norm"][:]
assert np.isnan(loss[3]) and np.isfinite(np.delete(loss, 3)).all(), loss
assert norm[3] == norm[2] and norm[4] != norm[3], norm
EOF
    fi
    # -n with --resume: the peer's refusal (usage error)
    "$TT" --resume "$D" -n x >/dev/null 2>"$TMP/err"
    rc=$?
    check "-n with --resume exits 2, got $rc" [ $rc -eq 2 ]
    check "-n with --resume message" grep -q "cannot be specified both" "$TMP/err"
    # other flags with --resume are refused too, naming the flag (they used to be ignored)
    "$TT" --resume "$D" --seed 5 >/dev/null 2>"$TMP/err"
    rc=$?
    check "--seed with --resume exits 2, got $rc" [ $rc -eq 2 ]
    check "--seed with --resume message" grep -q "'--seed' cannot be given with it" "$TMP/err"
    # --resume takes the run's own config (RUN/configs): the --base file edited after the
    # interrupt changes nothing; -r also takes a file inside the run (the original's -r FILE)
    cp "$SD_CFG" "$TMP/edit.yaml"
    cp -r "$FIX/imgs" "$TMP/imgs_ed"
    TI_TRAIN_RAISE_SIGINT_AT=2 "$TT" --base "$TMP/edit.yaml" -t --actual_resume \
        "$TMP/sd.safetensors" --data_root "$TMP/imgs_ed" -l "$TMP/ed" -n run --max_steps 6 \
        --quiet $SMALL >/dev/null 2>"$TMP/err"
    check "edited-config run interrupted: exit 130" [ $? -eq 130 ]
    sed -i 's/base_learning_rate: .*/base_learning_rate: 0.7/' "$TMP/edit.yaml"
    ED=$(rundir "$TMP/ed")
    "$TT" -r "$ED/checkpoints/embeddings.pt" --quiet >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "resume from a checkpoint file exits 0, got $rc ($(tail -n 2 "$TMP/err"))" [ $rc -eq 0 ]
    check "resume from a checkpoint file names the run folder" grep -q "the run folder of" "$TMP/out"
    check "edited --base after the interrupt: resumed == uninterrupted" \
        cmp -s "$A/checkpoints/embeddings_gs-5.pt" "$ED/checkpoints/embeddings_gs-5.pt"
    check "unchanged images: no data warning" bash -c "! grep -q 'not those the run was trained on' '$TMP/err'"
    # the images changed since: a warning naming the folder
    cp "$(ls "$TMP"/imgs_ed/* | head -n 1)" "$TMP/imgs_ed/zz_added.png"
    "$TT" -r "$ED/checkpoints" --quiet --max_steps 7 >/dev/null 2>"$TMP/err"
    rc=$?
    check "resume after the images changed exits 0, got $rc ($(tail -n 2 "$TMP/err"))" [ $rc -eq 0 ]
    check "changed images: warned" grep -q "imgs_ed are not those the run was trained on" "$TMP/err"
    # Ctrl-C during the last step: the run is complete and ends as any other (it used to exit
    # 130 with a resume the tool then refused); -p and -d (the peer's flags) are accepted
    TI_TRAIN_RAISE_SIGINT_AT=6 train "$TMP/last" -p proj -d >/dev/null 2>"$TMP/err"
    rc=$?
    check "SIGINT in the last step exits 0, got $rc ($(tail -n 2 "$TMP/err"))" [ $rc -eq 0 ]
    check "SIGINT in the last step: the final embeddings_gs-5.pt == uninterrupted" \
        cmp -s "$A/checkpoints/embeddings_gs-5.pt" "$(rundir "$TMP/last")/checkpoints/embeddings_gs-5.pt"
    ;;
kill9)
    # 20 kills at random moments; in between the run is resumed when it saved a resume state
    KS="lightning.modelcheckpoint.params.every_n_train_steps=1
    lightning.callbacks.image_logger.params.log_images_kwargs.sample=false"
    RANDOM=4242
    for i in $(seq 1 20); do
        R=$(rundir "$TMP/k")
        if [ -n "$R" ] && [ -f "$R/checkpoints/resume.txt" ]; then
            "$TT" --resume "$R" --quiet >/dev/null 2>>"$TMP/err" &
        else
            rm -rf "$TMP/k"
            # a simple command, so $! is ti-train itself (a function would run in a subshell
            # that kill -9 ends while ti-train goes on)
            "$TT" --base "$SD_CFG" -t --actual_resume "$TMP/sd.safetensors" --data_root "$FIX/imgs" \
                -l "$TMP/k" -n run --quiet $SMALL --max_steps 400 $KS >/dev/null 2>>"$TMP/err" &
        fi
        pid=$!
        sleep "$((RANDOM % 2)).$(printf '%03d' $((RANDOM % 1000)))"
        kill -9 $pid 2>/dev/null
        wait $pid 2>/dev/null
        R=$(rundir "$TMP/k")
        [ -n "$R" ] || continue
        for f in "$R"/checkpoints/embeddings*.pt; do
            [ -e "$f" ] || continue
            check "kill $i: $f loads" "$INSPECT" "$f" >/dev/null
        done
        for f in "$R"/configs/*.yaml; do
            [ -e "$f" ] || continue
            check "kill $i: $f is complete" [ -s "$f" ]
        done
    done
    R=$(rundir "$TMP/k")
    # what the kills left resumes cleanly: two more steps from the saved step
    if [ -f "$R/checkpoints/resume.txt" ]; then
        st=$(sed -n 's/^step //p' "$R/checkpoints/resume.txt")
        "$TT" --resume "$R" --quiet --max_steps $((st + 2)) >/dev/null 2>"$TMP/err2"
        rc=$?
        check "final resume from step $st exits 0 ($(tail -n 2 "$TMP/err2"))" [ $rc -eq 0 ]
        check "final resume wrote embeddings_gs-$((st + 1)).pt" "$INSPECT" "$R/checkpoints/embeddings_gs-$((st + 1)).pt" >/dev/null
    else
        bad "no resume state after 20 kills"
    fi
    PYH=$(py_with h5py)
    if [ -n "$PYH" ] && [ -f "$R/metrics.h5" ]; then
        check "metrics.h5 after the kills is readable, one row per step" "$PYH" - "$R/metrics.h5" <<'EOF'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
s = f["step"][:]
assert len(s) > 0 and np.array_equal(s, np.arange(len(s))), s
EOF
    fi
    n=$(ls "$R"/checkpoints/embeddings_gs-*.pt 2>/dev/null | wc -l)
    check "the kill loop made progress ($n files)" [ "$n" -gt 2 ]
    PY=$(py_with torch)
    if [ -n "$PY" ]; then
        check "torch loads every file left" "$PY" - "$R"/checkpoints/embeddings*.pt <<'EOF'
import sys, torch
for p in sys.argv[1:]:
    d = torch.load(p, map_location="cpu", weights_only=True)
    assert d["string_to_param"]["*"].shape[-1] == 32, p
EOF
    fi
    ;;
dryrun)
    "$TT" --base "$SD_CFG" --dry_run --data_root "$FIX/exif" -l "$TMP/dr" -n d --seed 5 \
        >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "dry run exit status $rc ($(tail -n 2 "$TMP/err"))" [ $rc -eq 0 ]
    R=$(rundir "$TMP/dr")
    check "prepared image written" [ -s "$R/data/000_rot6.png" ]
    check "20 captions" [ "$(wc -l <"$R/data/captions.txt" 2>/dev/null)" = 20 ]
    check "captions use the placeholder" grep -q '\*' "$R/data/captions.txt"
    check "no checkpoints in a dry run" [ ! -e "$R/checkpoints" ]
    PY=$(py_with PIL)
    if ! grep -q "EXIF orientation: applied" "$TMP/out"; then
        skipped="$skipped exif(built without libexif)"
    elif [ -n "$PY" ]; then
        check "EXIF orientation 6 comes out upright, 64x64" "$PY" - "$R/data/000_rot6.png" <<'EOF'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
assert im.size == (64, 64), im.size
top, bottom = im.getpixel((32, 8)), im.getpixel((32, 56))
assert top[0] > 150 and top[2] < 80, top        # red on top
assert bottom[2] > 150 and bottom[0] < 80, bottom  # blue below
EOF
    else
        skipped="$skipped dryrun-pixels(no python3 PIL)"
    fi
    # a placeholder given on the command line reaches the captions (peer pitfall 1.7-b)
    "$TT" --base "$SD_CFG" --dry_run --data_root "$FIX/imgs" -l "$TMP/dr2" \
        --placeholder_string 'sks' >/dev/null 2>"$TMP/err"
    R=$(rundir "$TMP/dr2")
    check "--placeholder_string in the captions" grep -q 'sks' "$R/data/captions.txt"
    check "no '*' left in the captions" bash -c "! grep -q '\*' '$R/data/captions.txt'"
    check "4 prepared images" [ "$(ls "$R/data"/*.png | wc -l)" -eq 4 ]
    # size: null keeps each image's size; a larger image after a smaller one (a 100x50 TGA
    # after the 72x60 PNG) must fit the example buffer
    mkdir -p "$TMP/sizes" && cp "$FIX/imgs/a_red.png" "$TMP/sizes/"
    { printf '\0\0\2\0\0\0\0\0\0\0\0\0\144\0\62\0\30\40'; head -c 15000 /dev/zero | tr '\0' '\200'; } >"$TMP/sizes/wide.tga"
    "$TT" --base "$SD_CFG" --dry_run --data_root "$TMP/sizes" -l "$TMP/dr5" \
        data.params.train.params.size=null >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "size null, two sizes: exit status $rc ($(tail -n 2 "$TMP/err"))" [ $rc -eq 0 ]
    check "size null: said" grep -q "2 images prepared at their own sizes" "$TMP/out"
    # a 248-byte file name: the prepared copy's name is cut to fit beside its temporary name
    LONGF="$(printf 'a%.0s' $(seq 1 244)).png"
    mkdir -p "$TMP/longname" && cp "$FIX/imgs/a_red.png" "$TMP/longname/$LONGF"
    "$TT" --base "$SD_CFG" --dry_run --data_root "$TMP/longname" -l "$TMP/dr6" >/dev/null 2>"$TMP/err"
    rc=$?
    check "a 248-byte image name: exit status $rc ($(tail -n 2 "$TMP/err"))" [ $rc -eq 0 ]
    check "its prepared copy" bash -c "ls '$(rundir "$TMP/dr6")'/data/000_aaaa*.png >/dev/null"
    # the same name twice (possibly in the same second): two folders, never a shared one
    for _ in 1 2; do
        "$TT" --base "$SD_CFG" --dry_run --data_root "$FIX/imgs" -l "$TMP/dr3" -n same >/dev/null 2>&1
    done
    check "two runs, two folders" [ "$(ls "$TMP/dr3" | wc -l)" -eq 2 ]
    # four started together (the same second, the same name; each sees the name free before
    # any makes its folder): four folders, each with its own configs and data
    for i in 1 2 3 4; do
        "$TT" --base "$SD_CFG" --dry_run --data_root "$FIX/imgs" -l "$TMP/dr7" -n same >"$TMP/par$i" 2>&1 &
    done
    wait
    check "four runs side by side, four folders ($(ls "$TMP/dr7" | tr '\n' ' '))" [ "$(ls "$TMP/dr7" | wc -l)" -eq 4 ]
    check "each side-by-side run names its own folder" [ "$(sed -n 's/.*written to \(.*\)\/data\/;.*/\1/p' "$TMP"/par[1-4] | sort -u | wc -l)" -eq 4 ]
    # --max_epochs: PL stops at whichever of max_steps and max_epochs comes first; an epoch is
    # 4 images x 100 repeats / batch 2 = 200 micro-batches, with accumulation 3 ceil(200/3) = 67
    # optimizer steps (PL steps at the epoch's end)
    for ex in "1 500 1:200" "2 500 3:134" "3 50 1:50"; do
        set -- $ex
        acc=${3%%:*} want=${3#*:}
        "$TT" --base "$SD_CFG" --dry_run --data_root "$FIX/imgs" -l "$TMP/dr9" --max_epochs "$1" \
            --max_steps "$2" --accumulate_grad_batches "$acc" >"$TMP/out" 2>"$TMP/err"
        check "--max_epochs $1 --max_steps $2 (accumulate $acc): $want steps ($(tail -n 1 "$TMP/out"))" \
            grep -q "; $want steps;" "$TMP/out"
    done
    check "--max_epochs: in the run's lightning config" \
        bash -c "grep -q 'max_epochs: 3' '$TMP'/dr9/*/configs/*-lightning.yaml"
    # -n a/b: the run in a folder of its own, as the peer's os.makedirs makes it
    "$TT" --base "$SD_CFG" --dry_run --data_root "$FIX/imgs" -l "$TMP/dr8" -n grp/run1 >/dev/null 2>"$TMP/err"
    rc=$?
    check "-n grp/run1: exit status $rc ($(tail -n 2 "$TMP/err"))" [ $rc -eq 0 ]
    check "-n grp/run1: LOGDIR/<now>_grp/run1/configs" bash -c "ls -d '$TMP'/dr8/*_grp/run1/configs >/dev/null"
    # --templates: every caption comes from the file's two templates
    printf '# two frames\na drawing of a {}\nthe [name] on a shelf\n' >"$TMP/tmpl.txt"
    "$TT" --base "$SD_CFG" --dry_run --data_root "$FIX/imgs" -l "$TMP/dr4" \
        --templates "$TMP/tmpl.txt" >"$TMP/out" 2>"$TMP/err"
    check "--templates: said at start" grep -q "captions: 2 templates from $TMP/tmpl.txt" "$TMP/out"
    R=$(rundir "$TMP/dr4")
    check "--templates: 20 captions" [ "$(wc -l <"$R/data/captions.txt" 2>/dev/null)" = 20 ]
    check "--templates: only the file's templates" bash -c "! grep -vxE 'a drawing of a \\*|the \\* on a shelf' '$R/data/captions.txt'"
    check "--templates: both drawn" bash -c "grep -q drawing '$R/data/captions.txt' && grep -q shelf '$R/data/captions.txt'"
    ;;
bad)
    # expect_fail NAME WANT_RC PATTERN -- command: exit status, message, no run folder, no crash
    expect_fail() {
        local name=$1 want=$2 pat=$3
        shift 4
        rm -rf "$TMP/lb"
        "$@" -l "$TMP/lb" >"$TMP/out" 2>"$TMP/err"
        local rc=$?
        check "$name: exit status $rc, want $want ($(head -c 300 "$TMP/err"))" [ $rc -eq "$want" ]
        check "$name: message matches '$pat' ($(head -c 300 "$TMP/err"))" grep -qiE -- "$pat" "$TMP/err"
        check "$name: no run folder left" bash -c "[ -z \"\$(ls -A '$TMP/lb' 2>/dev/null)\" ]"
    }
    mkdir -p "$TMP/empty" "$TMP/mixed"
    cp "$FIX"/imgs/* "$FIX"/bad/* "$TMP/mixed/"
    B="--base $SD_CFG -t --actual_resume $TMP/sd.safetensors"
    # shellcheck disable=SC2086
    {
        expect_fail "missing data_root" 1 "data_root.*/nonexistent" -- "$TT" $B --data_root /nonexistent/imgs
        expect_fail "empty data_root" 1 "no usable|no images|empty" -- "$TT" $B --data_root "$TMP/empty"
        # only bad files: each named, then an error, before any model (the model path is bogus)
        expect_fail "only non-images" 1 "no usable|no images|none of its .* is a usable image" -- "$TT" --base "$SD_CFG" -t \
            --actual_resume /nonexistent.ckpt --data_root "$FIX/bad"
        check "non-image warnings name the files" bash -c "grep -q notes.txt '$TMP/err' && grep -q fake.png '$TMP/err' && grep -q truncated.png '$TMP/err' && grep -q liar.png '$TMP/err'"
        check "no model error (data checked first)" bash -c "! grep -q nonexistent.ckpt '$TMP/err'"
        expect_fail "several-token placeholder" 1 "single token" -- "$TT" $B --data_root "$FIX/imgs" \
            --placeholder_string "two words"
        expect_fail "several-token init word" 1 "single token" -- "$TT" $B --data_root "$FIX/imgs" \
            --init_word "qxzvbnmkwj"
        # a dry run checks the words too (no model: the tokenizer alone)
        expect_fail "dry run: several-token init word" 1 "initializer_words.*single token" -- \
            "$TT" --base "$SD_CFG" --dry_run --data_root "$FIX/imgs" --init_word "qxzvbnmkwj"
        printf 'a photo of a {}\na [name] and a {}\n' >"$TMP/two_slots.txt"
        expect_fail "template with two slots" 1 "templates.*two_slots.txt:2:.*exactly one" -- "$TT" $B \
            --data_root "$FIX/imgs" --templates "$TMP/two_slots.txt"
        expect_fail "missing templates file" 1 "templates.*nonexistent.txt" -- "$TT" $B \
            --data_root "$FIX/imgs" --templates "$TMP/nonexistent.txt"
        # a failure after the run folder was made (a data folder name so long that the run
        # folder <folder><date>_x fits 255 bytes but the saved config's temporary name beside
        # <folder><date>-project.yaml does not): the folder goes too
        LONGD="$TMP/$(printf 'e%.0s' $(seq 1 228))"
        mkdir -p "$LONGD" && cp "$FIX/imgs/a_red.png" "$LONGD/"
        expect_fail "run folder removed after a failure" 1 "File name too long" -- "$TT" \
            --base "$SD_CFG" --dry_run --data_root "$LONGD" -n x
        check "the removal is said" grep -q "unfinished run folder .* was removed" "$TMP/err"
        expect_fail "missing checkpoint" 1 "nonexistent.ckpt" -- "$TT" --base "$SD_CFG" -t \
            --actual_resume "$TMP/nonexistent.ckpt" --data_root "$FIX/imgs"
        needs_ldm
        expect_fail "wrong-model checkpoint" 1 "looks like an LDM|shape" -- "$TT" --base "$SD_CFG" -t \
            --actual_resume "$TMP/ldm.safetensors" --data_root "$FIX/imgs"
        expect_fail "config the schema rejects" 1 "num_heads" -- "$TT" $B --data_root "$FIX/imgs" \
            model.params.unet_config.params.num_heads=eight
        expect_fail "image logger DDIM steps the sampler refuses" 1 "ddim_steps" -- "$TT" $B \
            --data_root "$FIX/imgs" lightning.callbacks.image_logger.params.log_images_kwargs.ddim_steps=3
        expect_fail "no image size" 1 "size" -- "$TT" $B --data_root "$FIX/imgs" \
            data.params.train.params.size=null
        expect_fail "several GPUs in one process" 2 "--gpus .*mpirun" -- "$TT" $B --data_root "$FIX/imgs" --gpus 0,3
        expect_fail "unknown flag" 2 "--bogus" -- "$TT" $B --data_root "$FIX/imgs" --bogus
        expect_fail "an option as a value" 2 "--name: expected one argument, not the option '--seed'" -- \
            "$TT" $B --data_root "$FIX/imgs" -n --seed 3
        expect_fail "Lightning flag ti does not map" 2 "--min_epochs' is a PyTorch Lightning Trainer flag.*--max_steps" -- \
            "$TT" $B --data_root "$FIX/imgs" --min_epochs 3
        expect_fail "bad --max_steps" 2 "--max_steps" -- "$TT" $B --data_root "$FIX/imgs" --max_steps x
        expect_fail "fp16 on the CPU" 2 "--precision" -- "$TT" $B --data_root "$FIX/imgs" --precision fp16
        # bf16 runs on the CPU (autograd/cpu/bf16.c): one step, a finite loss, an embedding file
        "$TT" $B --data_root "$FIX/imgs" --max_steps 1 --precision bf16 --quiet -l "$TMP/lbf16" \
            >/dev/null 2>"$TMP/bf16.err"
        check "bf16 on the CPU trains (exit 0)" [ $? -eq 0 ]
        check "bf16 on the CPU writes embeddings.pt" [ -n "$(ls "$TMP"/lbf16/*/checkpoints/embeddings.pt 2>/dev/null)" ]
        # the config's precision counts as --precision (the peer's PL reads it from there)
        expect_fail "precision 16 in the config on the CPU" 2 "precision.*16" -- "$TT" $B \
            --data_root "$FIX/imgs" lightning.trainer.precision=16
        expect_fail "precision 64" 1 "precision.*64" -- "$TT" $B --data_root "$FIX/imgs" \
            lightning.trainer.precision=64
        # an embedding file for another placeholder ('*') while the captions say 'cat': nothing
        # could be learned (the peer trains on silently), so ti refuses and says why
        "$TT" $B --data_root "$FIX/imgs" --max_steps 1 --format peer --quiet -l "$TMP/lstar" \
            >/dev/null 2>&1
        STAR=$(ls "$TMP"/lstar/*/checkpoints/embeddings.pt 2>/dev/null | head -n 1)
        check "the '*' embedding file exists" [ -n "$STAR" ]
        expect_fail "embedding file without the captions' placeholder" 1 "'cat'.*not" -- "$TT" $B \
            --data_root "$FIX/imgs" --placeholder_string cat --embedding_manager_ckpt "${STAR:-x}"
        "$TT" --resume "$TMP/empty" >"$TMP/out" 2>"$TMP/err" # (expect_fail adds -l: refused with --resume)
        rc=$?
        check "resume of a non-run: exit status 1, got $rc" [ $rc -eq 1 ]
        check "resume of a non-run: message" grep -qiE "not a ti-train run|not a folder" "$TMP/err"
    }
    # mixed folder: the bad files are skipped with warnings, the good ones used
    "$TT" --base "$SD_CFG" --dry_run --data_root "$TMP/mixed" -l "$TMP/lm" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "mixed folder dry run succeeds ($rc: $(head -c 300 "$TMP/err"))" [ $rc -eq 0 ]
    check "truncated file warned" grep -q "truncated.png" "$TMP/err"
    check "lying header warned" grep -q "liar.png" "$TMP/err"
    R=$(rundir "$TMP/lm")
    check "4 usable images" [ "$(ls "$R/data"/*.png 2>/dev/null | wc -l)" -eq 4 ]
    ;;
torch)
    PY=$(py_with torch)
    if [ -z "$PY" ]; then
        echo "SKIP: no python3 with torch (set TI_PYTHON or install python3-torch)"
        exit 77
    fi
    train "$TMP/t" --max_steps 2 >/dev/null 2>"$TMP/err" || bad "a1111 run: $(tail -n 2 "$TMP/err")"
    train "$TMP/p" --max_steps 2 --format peer >/dev/null 2>"$TMP/err" || bad "peer run"
    T=$(rundir "$TMP/t")
    P=$(rundir "$TMP/p")
    check "torch weights_only=True loads a1111 files; peer-style access works" "$PY" - "$T"/checkpoints/embeddings*.pt <<'EOF'
import sys, torch
for p in sys.argv[1:]:
    d = torch.load(p, map_location="cpu", weights_only=True)
    t = d["string_to_param"]["*"]
    assert t.dtype == torch.float32 and t.shape == (1, 32), (p, t.shape)
    assert int(d["string_to_token"]["*"]) == 265, d["string_to_token"]
    assert torch.isfinite(t).all()
EOF
    check "torch loads the peer format (EmbeddingManager.load's torch.load)" "$PY" - "$P"/checkpoints/embeddings.pt "$T"/checkpoints/embeddings.pt <<'EOF'
import sys, torch
a = torch.load(sys.argv[1], map_location="cpu")
b = torch.load(sys.argv[2], map_location="cpu", weights_only=True)
assert torch.equal(a["string_to_param"]["*"].data, b["string_to_param"]["*"]), "formats differ"
EOF
    ;;
mpi)
    if [ -z "$MPIEXEC" ]; then
        echo "SKIP: ti-train was built without MPI (libopenmpi-dev) or mpirun is missing"
        exit 77
    fi
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    NS="lightning.callbacks.image_logger.params.log_images_kwargs.sample=false"
    # Open MPI's own allocations (its dlopen'ed components) look like leaks to LeakSanitizer
    # (make test-asan): leak checking stays on for every single-process run of the same code
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    "$MPIEXEC" --oversubscribe -np 2 "$TT" --base "$SD_CFG" -t --actual_resume "$TMP/sd.safetensors" \
        --data_root "$FIX/imgs" -l "$TMP/m2" -n run --max_steps 4 --quiet $SMALL $NS \
        data.params.batch_size=1 >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "mpirun -np 2 exit status $rc ($(tail -n 3 "$TMP/err"))" [ $rc -eq 0 ]
    check "two processes count as two devices in the LR line" grep -q "1 (accumulate_grad_batches) \* 2 (num_gpus) \* 1 (batchsize)" "$TMP/out"
    check "one run folder (rank 0 writes)" [ "$(ls "$TMP/m2" | wc -l)" -eq 1 ]
    train "$TMP/m1" --max_steps 4 $NS data.params.batch_size=2 >/dev/null 2>"$TMP/err"
    A=$(rundir "$TMP/m1")
    B=$(rundir "$TMP/m2")
    for f in embeddings_gs-1.pt embeddings_gs-3.pt; do
        "$INSPECT" --json "$A/checkpoints/$f" >"$TMP/a.json"
        "$INSPECT" --json "$B/checkpoints/$f" >"$TMP/b.json"
        check "$f: 2 ranks x batch 1 == 1 rank x batch 2 (f32 tolerance)" "$(py_with json)" - "$TMP/a.json" "$TMP/b.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
ta, tb = a["tensors"][0], b["tensors"][0]
assert ta["shape"] == tb["shape"]
for x, y in zip(ta["first"] + [ta["sum"]], tb["first"] + [tb["sum"]]):
    assert abs(x - y) <= 1e-5 + 1e-5 * abs(y), (x, y)
EOF
    done
    PY=$(py_with h5py)
    if [ -n "$PY" ] && [ -f "$A/metrics.h5" ]; then
        check "losses agree per step" "$PY" - "$A/metrics.h5" "$B/metrics.h5" <<'EOF'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
assert a["loss"].shape == b["loss"].shape == (4,)
assert np.allclose(a["loss"][:], b["loss"][:], rtol=1e-5, atol=1e-6), (a["loss"][:], b["loss"][:])
EOF
    fi
    ;;
*)
    echo "unknown mode $MODE" >&2
    exit 2
    ;;
esac

echo "$MODE: $checks checks, $fails failures${skipped:+, skipped:$skipped}"
[ $fails -eq 0 ] || exit 1
[ -z "$skipped" ] || exit 77
[ $checks -gt 0 ] || exit 1
exit 0
