#!/usr/bin/env bash
# Robustness CI (issue 6): the test suite under AddressSanitizer, then each
# libFuzzer target of FuzzTesting/ for a bounded time.
#
#   bash .ci/robustness.sh            # KVMPT_FUZZ_SECONDS=60 per target
#   KVMPT_FUZZ_SECONDS=600 bash .ci/robustness.sh
#
# Builds go to their own scratch paths (.build/asan, FuzzTesting/.build), so
# the plain debug build in .build is left alone. A fuzz crash leaves its
# input in FuzzTesting/FailCases/<target>/ (add it to git: swift test then
# replays it) and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
fuzz_seconds=${KVMPT_FUZZ_SECONDS:-60}
# The Swift runtime's backtracer and ASan both want the fatal signals.
export SWIFT_BACKTRACE=enable=no

# What the sanitizer builds need beyond the toolchain: the gold linker and
# the C runtime headers (Debian's binutils and libc6-dev).
missing=()
command -v ld.gold >/dev/null 2>&1 || missing+=(binutils)
[ -e /usr/include/stdio.h ] || missing+=(libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
    echo "robustness: installing ${missing[*]}"
    if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
    "${apt_get[@]}" update -qq && "${apt_get[@]}" install -y -qq "${missing[@]}"
fi
# llvm-symbolizer from the toolchain makes the reports readable.
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
    sym=$(dirname "$(command -v swift)")/llvm-symbolizer
    [ -x "$sym" ] && export ASAN_SYMBOLIZER_PATH="$sym"
fi

start=$SECONDS

# 1. The whole test suite under ASan (LeakSanitizer included). The only
#    suppression is XCTest's own one-off allocation (6 blocks, 368 bytes, in
#    libXCTest.so); nothing of kvmpt is suppressed. (CommandLineTests runs
#    kvmpt with posix_spawn, not Foundation's Process, for that reason.)
echo "== swift test --sanitize=address"
suppressions=$(mktemp)
trap 'rm -f "$suppressions"' EXIT
cat > "$suppressions" <<'SUPP'
leak:libXCTest.so
SUPP
export LSAN_OPTIONS="suppressions=$suppressions:print_suppressions=0"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
swift test --sanitize=address --scratch-path .build/asan 2>&1 | grep -v '^\[[0-9]*/[0-9]*\]'
unset LSAN_OPTIONS ASAN_OPTIONS
echo "robustness: ASan test run took $((SECONDS - start)) s"

# 2. Each fuzz target for a bounded time. SwiftPM applies -sanitize=fuzzer
#    only to the FuzzTesting targets; the coverage flags instrument the
#    library too, so that libFuzzer sees its branches.
echo "== fuzzing, ${fuzz_seconds} s per target"
cd "$root/FuzzTesting"
swift build -c debug --sanitize=fuzzer --sanitize=address \
    -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table 2>&1 | grep -v '^\[[0-9]*/[0-9]*\]'
bin=$(swift build -c debug --sanitize=fuzzer --sanitize=address \
    -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table --show-bin-path)
failed=0
for target in FuzzScriptParser FuzzOperations FuzzImageDecode; do
    corpus=$(mktemp -d)
    mkdir -p "FailCases/$target"
    echo "-- $target"
    set +e
    "$bin/$target" -max_total_time="$fuzz_seconds" -timeout=120 -rss_limit_mb=4096 \
        -print_final_stats=1 -artifact_prefix="FailCases/$target/" \
        "$corpus" "FailCases/$target" > "$corpus.log" 2>&1
    rc=$?
    set -e
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done )' "$corpus.log" || true
    if [ $rc -ne 0 ]; then
        failed=1
        echo "robustness: $target FAILED (exit $rc); input saved under FuzzTesting/FailCases/$target/:"
        grep -v -E '^(#|INFO:)' "$corpus.log" | tail -40
    fi
    rm -rf "$corpus" "$corpus.log"
done
echo "robustness: done in $((SECONDS - start)) s"
exit $failed
