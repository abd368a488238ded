#!/bin/sh
# test_ti_inspect_watermark.sh - `ti-inspect IMAGE --watermark` end to end on the reference
# encoder's fixtures (tests/fixtures/watermark, scripts/oracle/watermark_fixtures.py): the
# recovered bytes are the reference decoder's (cases.tsv), the verdict line, exit statuses.
# Usage: sh tests/test_ti_inspect_watermark.sh path/to/ti-inspect   (from the repository root)
set -u
TOOL=${1:?usage: test_ti_inspect_watermark.sh path/to/ti-inspect}
DIR=tests/fixtures/watermark
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ti_inspect_wm.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
fails=0
checks=0
fail() {
    echo "FAIL $*" >&2
    fails=$((fails + 1))
}

# every fixture, input and output: bytes = the reference decoder's, verdict follows from them
while IFS="$(printf '\t')" read -r name w h dec_in dec_out; do
    case $name in '#'*) continue ;; esac
    for kind in in out; do
        if [ $kind = in ]; then want=$dec_in; else want=$dec_out; fi
        checks=$((checks + 1))
        "$TOOL" "$DIR/${name}_$kind.png" --watermark >"$TMP/out" 2>"$TMP/err"
        rc=$?
        [ $rc -eq 0 ] || { fail "$name $kind: exit $rc: $(cat "$TMP/err")"; continue; }
        grep -q "^image: $DIR/${name}_$kind.png (${w}x${h})\$" "$TMP/out" ||
            fail "$name $kind: no image line: $(cat "$TMP/out")"
        grep -q "^watermark bytes: $want " "$TMP/out" ||
            fail "$name $kind: bytes differ from the reference decoder's $want: $(cat "$TMP/out")"
        if [ "$want" = 537461626c65446966667573696f6e5631 ]; then
            verdict='^watermark: StableDiffusionV1$'
        else
            verdict='^watermark: none ([0-9]* of 136 bits match'
        fi
        grep -q "$verdict" "$TMP/out" || fail "$name $kind: verdict: $(cat "$TMP/out")"
    done
done <"$DIR/cases.tsv"

# the marked reference vector, exactly
checks=$((checks + 1))
"$TOOL" --watermark "$DIR/pattern512_out.png" >"$TMP/out" 2>&1
printf '%s\n' "image: $DIR/pattern512_out.png (512x512)" \
    'watermark bytes: 537461626c65446966667573696f6e5631 "StableDiffusionV1"' \
    'watermark: StableDiffusionV1' >"$TMP/want"
cmp -s "$TMP/out" "$TMP/want" || fail "pattern512_out: $(cat "$TMP/out")"

# errors: missing file and non-image (1, the message names the file), usage (2)
printf 'not an image' >"$TMP/bad.png"
for c in "1 $TMP/missing.png" "1 $TMP/bad.png" "2" "2 $DIR/flat128_in.png --json" \
    "2 $DIR/flat128_in.png $DIR/flat128_out.png"; do
    set -- $c
    want=$1
    shift
    checks=$((checks + 1))
    "$TOOL" --watermark "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    [ $rc -eq "$want" ] || fail "--watermark $*: exit $rc, want $want"
    [ "$want" -eq 2 ] || grep -q "$1" "$TMP/err" || fail "--watermark $*: message does not name the file"
done

echo "$checks checks, $fails failures"
[ $fails -eq 0 ]
