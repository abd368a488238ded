#!/bin/sh
# test_ti_shapes.sh - ti-shapes end to end: generate writes N PNGs and captions.txt (and no
# captions in a concept folder), the same seed writes the same files, classify labels the
# generated images as their captions and attributes say, the concept images as hearts or teal, and
# usage errors exit 2 with a message naming the option.
# Usage: sh tests/test_ti_shapes.sh path/to/ti-shapes   (from the repository root; ctest)
set -u
TOOL=${1:?usage: test_ti_shapes.sh path/to/ti-shapes}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ti_shapes_test.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
fails=0
checks=0

check() { # check NAME CONDITION-COMMAND...
    name=$1
    shift
    checks=$((checks + 1))
    if "$@"; then
        echo "ok   $name"
    else
        echo "FAIL $name" >&2
        fails=$((fails + 1))
    fi
}

run() { # run WANT_RC command...: runs, keeps stdout/stderr in $TMP/out, $TMP/err
    want=$1
    shift
    "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    [ "$rc" -eq "$want" ] || { echo "exit status $rc, want $want: $*" >&2; cat "$TMP/err" >&2; return 1; }
}

check "generate" run 0 "$TOOL" generate --out "$TMP/a" --n 12 --seed 5
check "12 PNGs" [ "$(ls "$TMP/a" | grep -c '\.png$')" -eq 12 ]
check "captions.txt has 12 lines" [ "$(wc -l <"$TMP/a/captions.txt")" -eq 12 ]
check "caption lines name their file" grep -q "^00011.png	a" "$TMP/a/captions.txt"
check "no heart in captions" sh -c "! grep -q heart '$TMP/a/captions.txt'"
check "no temporary files left" [ "$(ls -A "$TMP/a" | grep -vc '^[0-9]*\.png$\|^captions\.txt$')" -eq 0 ]

check "same seed again" run 0 "$TOOL" generate --out "$TMP/b" --n 12 --seed 5
check "same bytes" cmp -s "$TMP/a/00007.png" "$TMP/b/00007.png"
check "same captions" cmp -s "$TMP/a/captions.txt" "$TMP/b/captions.txt"
check "other seed" run 0 "$TOOL" generate --out "$TMP/c" --n 12 --seed 6
check "other bytes" sh -c "! cmp -s '$TMP/a/00007.png' '$TMP/c/00007.png'"

# classify: every named shape and colour in a caption is what the classifier sees
check "classify" run 0 "$TOOL" classify "$TMP"/a/*.png
cp "$TMP/out" "$TMP/labels"
check "one line per image" [ "$(wc -l <"$TMP/labels")" -eq 12 ]
agree=1
while IFS='	' read -r file caption; do
    line=$(grep "/$file	" "$TMP/labels")
    for word in circle square triangle star ring cross diamond; do
        case " $caption " in *" $word "*) echo "$line" | grep -q "shape=$word " || agree=0 ;; esac
    done
    object=${caption%% on *} # the object's words; the background's follow " on "
    for word in red green blue yellow purple orange white black; do
        case " $object " in *" $word "*) echo "$line" | grep -q "colour=$word " || agree=0 ;; esac
    done
    case "$caption" in *" on "*)
        bg=$(echo "$caption" | sed 's/.* on an* \([a-z]*\) background$/\1/')
        echo "$line" | grep -q "background=$bg " || agree=0 ;;
    esac
done <"$TMP/a/captions.txt"
check "labels agree with the captions' shapes and colours" [ "$agree" -eq 1 ]

check "concept images" run 0 "$TOOL" generate --out "$TMP/h" --n 6 --held-out-only --seed 2
check "no captions.txt in the concept folder" [ ! -e "$TMP/h/captions.txt" ]
check "classify concept" run 0 "$TOOL" classify "$TMP"/h/*.png
check "all hearts" [ "$(grep -c 'shape=heart ' "$TMP/out")" -eq 6 ]
check "teal concept images" run 0 "$TOOL" generate --out "$TMP/t" --n 6 --concept teal --seed 2
check "no captions.txt in the teal folder" [ ! -e "$TMP/t/captions.txt" ]
check "count teal" run 0 "$TOOL" count --colour teal "$TMP"/t/*.png
check "all teal" grep -q "^teal: 6 of 6 (100.0 %)" "$TMP/out"
check "count teal in the hearts" run 0 "$TOOL" count --colour teal "$TMP"/h/*.png
check "no heart concept image is teal" grep -q "^teal: 0 of 6 (0.0 %)" "$TMP/out"
check "usage: unknown colour" run 2 "$TOOL" count --colour pink "$TMP"/t/00000.png
check "message lists the colours" grep -q "expected one of: red green blue yellow purple orange white black teal" "$TMP/err"
check "usage: bad --concept" run 2 "$TOOL" generate --out "$TMP/x" --n 2 --concept cat
check "message names --concept" grep -q -- "--concept cat: expected heart or teal" "$TMP/err"
check "no teal in the data set's captions" sh -c "! grep -q teal '$TMP/a/captions.txt'"

check "eval" run 0 "$TOOL" eval --n 40 --seed 3
check "eval prints accuracy" grep -q "^shape 100.00 %" "$TMP/out"

check "usage: no command" run 2 "$TOOL"
check "usage: --n missing" run 2 "$TOOL" generate --out "$TMP/x"
check "usage: bad --size" run 2 "$TOOL" generate --out "$TMP/x" --n 2 --size 8
check "message names --size" grep -q -- "--size 8: expected 32..512" "$TMP/err"
check "usage: unknown option" run 2 "$TOOL" eval --bogus 1
check "message names the option" grep -q -- "unknown option --bogus" "$TMP/err"
check "missing file: exit 1" run 1 "$TOOL" classify "$TMP/none.png"
check "message names the file" grep -q "none.png" "$TMP/err"
check "--help" run 0 "$TOOL" --help
check "help explains the held-out concept" grep -q "held-out" "$TMP/out"

echo "$checks checks, $fails failures"
[ "$fails" -eq 0 ]
