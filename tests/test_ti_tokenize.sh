#!/bin/sh
# test_ti_tokenize.sh - ti-tokenize end to end: runs the tool on a few inputs and compares its
# output, exit status and messages with the expected ones (ids from the reference tokenizers,
# sd-arch.md §5.2 / §6.1 test vectors and ti-peer.md §3.2).
# Usage: sh tests/test_ti_tokenize.sh path/to/ti-tokenize   (from the repository root; ctest)
set -u
TOOL=${1:?usage: test_ti_tokenize.sh path/to/ti-tokenize}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ti_tokenize_test.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
fails=0
checks=0

# expect NAME WANT_STATUS WANT_STDOUT_FILE -- command...   (stdout compared exactly)
expect() {
    name=$1 want_rc=$2 want_out=$3
    shift 4
    checks=$((checks + 1))
    "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ "$rc" -ne "$want_rc" ]; then
        echo "FAIL $name: exit status $rc, want $want_rc; stderr:" >&2
        cat "$TMP/err" >&2
        fails=$((fails + 1))
        return
    fi
    if [ -n "$want_out" ] && ! cmp -s "$TMP/out" "$want_out"; then
        echo "FAIL $name: stdout differs:" >&2
        diff "$want_out" "$TMP/out" >&2
        fails=$((fails + 1))
        return
    fi
    echo "ok   $name"
}

# stderr_has NAME TEXT   (after expect: the last stderr must contain TEXT)
stderr_has() {
    checks=$((checks + 1))
    if ! grep -qF -- "$2" "$TMP/err"; then
        echo "FAIL $1: stderr lacks '$2'; it was:" >&2
        cat "$TMP/err" >&2
        fails=$((fails + 1))
    fi
}

want() { printf '%s\n' "$@" >"$TMP/want"; }

P="a painting of a virus monster playing guitar"
want "49406 320 3086 539 320 11808 6060 1629 5084 49407" \
     "49406 847 713 1691 272 273 274 275 322 19056 585 568 2481 49407" \
     "49406 49407"
expect sd_arguments 0 "$TMP/want" -- "$TOOL" "$P" "don't stop 1234 C++ it's ok" ""

want "101 1037 4169 1997 1037 7865 6071 2652 2858 102" "101 14477 20961 3468 19204 3989 102"
expect ldm_arguments 0 "$TMP/want" -- "$TOOL" --model ldm "$P" "unaffable tokenization"

# texts one per line on stdin (CRLF tolerated); options may follow texts
printf 'sculpture\r\n*\nopossum\n' >"$TMP/in"
want "49406 8757 49407" "49406 265 49407" "49406 78 38575 49407"
expect sd_stdin 0 "$TMP/want" -- sh -c '"$1" <"$2"' sh "$TOOL" "$TMP/in"

# --pad: all 77 ids
{
    printf '49406 2368'
    i=0
    while [ $i -lt 75 ]; do printf ' 49407'; i=$((i + 1)); done
    printf '\n101 4937 102'
    i=0
    while [ $i -lt 74 ]; do printf ' 0'; i=$((i + 1)); done
    printf '\n'
} >"$TMP/want"
expect pad 0 "$TMP/want" -- sh -c '"$1" cat --pad && "$1" --pad --model ldm cat' sh "$TOOL"

# --check: the single-token rule
want "49406 265 49407" "49406 2368 49407"
expect check_ok 0 "$TMP/want" -- "$TOOL" --check "*" cat
want "49406 2368 49407" "49406 78 38575 49407"
expect check_fail 1 "$TMP/want" -- "$TOOL" --check cat opossum
stderr_has check_fail '"opossum"'
stderr_has check_fail "78 38575"
stderr_has check_fail "ti-tokenize"
want "101 100 102"
expect check_ldm_unk 1 "$TMP/want" -- "$TOOL" --model ldm --check "🙂"
stderr_has check_ldm_unk "[UNK]"

# a text that starts with -- goes after a lone --
want "49406 2432 7601 49407"
expect double_dash 0 "$TMP/want" -- "$TOOL" -- "--pad"

# long text: truncated to 75 tokens, with a note on stderr
long=$(printf 'cat %.0s' $(seq 1 80))
expect long_note 0 "" -- "$TOOL" "$long"
stderr_has long_note "the model sees only the first 75"

# usage and run-time errors
expect bad_option 2 "" -- "$TOOL" --frobnicate x
stderr_has bad_option "--frobnicate"
expect bad_model 2 "" -- "$TOOL" --model xl cat
stderr_has bad_model "sd or ldm"
expect missing_value 2 "" -- "$TOOL" --vocab
expect missing_vocab 1 "" -- "$TOOL" --vocab "$TMP/none.txt.gz" cat
stderr_has missing_vocab "$TMP/none.txt.gz"
printf 'not a vocab\n' >"$TMP/bad_vocab.txt"
expect wrong_vocab 1 "" -- "$TOOL" --model ldm --vocab "$TMP/bad_vocab.txt" cat
stderr_has wrong_vocab "[PAD]"
expect help 0 "" -- "$TOOL" --help
checks=$((checks + 1))
if ! grep -q "single-token rule" "$TMP/out"; then
    echo "FAIL help: no single-token rule in --help" >&2
    fails=$((fails + 1))
fi

echo "$checks checks, $fails failures"
[ "$fails" -eq 0 ]
