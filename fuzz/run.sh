#!/usr/bin/env bash
# Runs the cargo-fuzz targets of mimi-sim (nightly toolchain, libFuzzer).
#
#   fuzz/run.sh [--runs N | --seconds S] [--jobs J] [TARGET...]
#
# * Installs cargo-fuzz (`cargo install cargo-fuzz --locked`) if it is missing.
# * Runs each TARGET (default: every target) one after the other, for N inputs
#   (default 10000000; with --jobs J, J libFuzzer processes share the corpus and each runs
#   N/J, so the total is still N) or S seconds, with -rss_limit_mb and -malloc_limit_mb set, from
#   fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET and, for `scenario`, scenarios/).
# * Prints per target: inputs, seconds, inputs/s, peak RSS, and crashes (the libFuzzer
#   log is fuzz/logs/TARGET.log; a crashing input lands in fuzz/artifacts/TARGET/).
# * Exits non-zero if any target crashed, leaked past a limit, or did not start.
#
# Environment: RSS_MB (default 2048), MALLOC_MB (default 512), TOOLCHAIN (default
# nightly), NICE (default 15: fuzzing yields to builds).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$here"

runs=10000000
jobs=1
seconds=""
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; seconds=""; shift 2 ;;
        --seconds) seconds="$2"; runs=""; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        -h|--help) sed -n 2,17p "$0"; exit 0 ;;
        -*) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

toolchain="${TOOLCHAIN:-nightly}"
rss_mb="${RSS_MB:-2048}"
malloc_mb="${MALLOC_MB:-512}"
nice_level="${NICE:-15}"

if ! cargo +"$toolchain" --version >/dev/null 2>&1; then
    echo "run.sh: the $toolchain toolchain is missing (rustup toolchain install $toolchain)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz"
    nice -n "$nice_level" cargo install cargo-fuzz --locked
fi

all=(wire content endpoint scenario trace hub)
if [ ${#targets[@]} -eq 0 ]; then
    targets=("${all[@]}")
fi

echo "run.sh: building ${targets[*]} (release, debug assertions on, no sanitizer: safe Rust)"
for t in "${targets[@]}"; do
    nice -n "$nice_level" cargo +"$toolchain" fuzz build --sanitizer none --debug-assertions "$t"
done

# The built binaries are run directly (no cargo while fuzzing).
host=$(rustc +"$toolchain" -vV | sed -n 's/^host: //p')
bin_dir="target/$host/release"
mkdir -p logs
# Seeds for `wire`: every body of the hub target's world (real MLS traffic), written
# by the hub target's setup.
if [[ " ${targets[*]} " == *" wire "* ]] && [ -x "$bin_dir/hub" ] && [ ! -d corpus/wire ]; then
    MIMI_FUZZ_SEED_DIR=corpus/wire nice -n "$nice_level" "$bin_dir/hub" -runs=1 >logs/seeds.log 2>&1 || true
fi
status=0
printf '%-10s %12s %9s %10s %9s %s\n' target inputs seconds inputs/s peak_MB result
for t in "${targets[@]}"; do
    corpus="corpus/$t"
    mkdir -p "$corpus" "artifacts/$t"
    if [ -d "seeds/$t" ]; then
        cp -n seeds/"$t"/* "$corpus"/ 2>/dev/null || true
    fi
    if [ "$t" = scenario ]; then
        cp -n "$root"/scenarios/*.toml "$corpus"/ 2>/dev/null || true
    fi
    limit=(-runs="$runs")
    if [ "$jobs" -gt 1 ] && [ -n "$runs" ]; then
        limit=(-runs=$(( (runs + jobs - 1) / jobs )))
    fi
    if [ "$jobs" -gt 1 ]; then
        # libFuzzer's -jobs: J worker processes, each logging to fuzz-K.log in the
        # current directory; they share (and merge into) the corpus directory.
        limit+=(-jobs="$jobs" -workers="$jobs")
        rm -f fuzz-*.log
    fi
    if [ -n "$seconds" ]; then
        limit=(-max_total_time="$seconds")
    fi
    log="logs/$t.log"
    start=$(date +%s.%N)
    set +e
    nice -n "$nice_level" "$bin_dir/$t" "$corpus" \
        "${limit[@]}" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$malloc_mb" \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1
    rc=$?
    set -e
    end=$(date +%s.%N)
    if [ "$jobs" -gt 1 ]; then
        # The parent's log already holds each worker's log as the worker ends.
        rm -f fuzz-*.log
    fi
    # libFuzzer's final stats: stat::number_of_executed_units, stat::peak_rss_mb.
    # (with --jobs: the sum of the workers' units, the largest worker's peak)
    inputs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | awk '{ s += $1 } END { if (NR) print s }')
    peak=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' | sort -n | tail -1)
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
    rate=$(awk -v n="${inputs:-0}" -v s="$secs" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print 0 }')
    result=ok
    # A crash inside a --jobs worker does not fail the parent: read the logs too.
    if [ "$rc" -eq 0 ] && grep -qE 'deadly signal|ERROR: libFuzzer|panicked at' "$log"; then
        rc=1
    fi
    if [ "$rc" -eq 72 ]; then
        result="interrupted (SIGINT)"
    elif [ "$rc" -ne 0 ]; then
        result="FAILED (exit $rc, see fuzz/$log and fuzz/artifacts/$t/)"
        status=1
    fi
    printf '%-10s %12s %9s %10s %9s %s\n' "$t" "${inputs:-?}" "$secs" "$rate" "${peak:-?}" "$result"
done
exit $status
