#!/usr/bin/env bash
# Run a fuzz target for ctest (see CMakeLists.txt here).
#
#   run.sh campaign FUZZER NAME SEEDS REGRESS WORK SECONDS
#       a short campaign on a scratch copy (WORK) of the seeds and of the
#       committed regression inputs; fails on any crash, leak, timeout or
#       out-of-memory and prints the executions it made
#   run.sh regress FUZZER DIR
#       every committed input in DIR once (README* and dot files skipped)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

inputs() { # the regression inputs of a directory
    [ -d "$1" ] || return 0
    find "$1" -maxdepth 1 -type f ! -name 'README*' ! -name '.*' | sort
}

mode=${1:-}
case "$mode" in
campaign)
    fuzzer=$2 name=$3 seeds=$4 regress=$5 work=$6 secs=$7
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    [ -d "$seeds" ] && find "$seeds" -maxdepth 1 -type f -exec cp {} "$work/corpus/" \;
    inputs "$regress" | while read -r f; do cp "$f" "$work/corpus/"; done
    if [ -z "$(ls -A "$work/corpus")" ]; then
        echo "fuzz_$name: no seeds in $seeds (did the fuzz_seeds test run?)" >&2
        exit 1
    fi
    dict=()
    [ -f "$here/$name.dict" ] && dict=("-dict=$here/$name.dict")
    # -max_len covers the largest seed (seeds.sh keeps them below 256 KiB).
    set +e
    "$fuzzer" -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -max_len=262144 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${dict[@]}" \
        "$work/corpus" >"$work/log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
    echo "fuzz_$name: ${execs:-?} executions in $secs s (${rate:-?}/s)," \
        "corpus of $(ls "$work/corpus" | wc -l) inputs from $(ls "$seeds" 2>/dev/null | wc -l) seeds"
    found=$(ls -A "$work/artifacts")
    if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
        tail -n 80 "$work/log"
        echo "fuzz_$name: FAILED (exit $rc); inputs kept in $work/artifacts/: ${found:-none}"
        echo "minimise with: $fuzzer -minimize_crash=1 -runs=20000 -exact_artifact_path=min INPUT"
        echo "then commit it under tests/fuzz/regress/$name/ with the fix"
        exit 1
    fi
    ;;
regress)
    fuzzer=$2 dir=$3
    mapfile -t files < <(inputs "$dir")
    if [ ${#files[@]} -eq 0 ]; then
        echo "$(basename "$fuzzer"): no regression inputs in $dir"
        exit 0
    fi
    "$fuzzer" "${files[@]}"
    echo "$(basename "$fuzzer"): ${#files[@]} regression inputs replayed without a crash"
    ;;
*)
    echo "usage: $0 campaign FUZZER NAME SEEDS REGRESS WORK SECONDS | regress FUZZER DIR" >&2
    exit 2
    ;;
esac
