#!/usr/bin/env bash
# compare-floor.sh: issue 5's bar, measured side by side in one run.
#
# Builds the memory floor (../shared/bench/floor.c, gcc -O2) and kvmpt
# (release), writes workloads A and B as scripts to a temp dir, then runs
# floor and `kvmpt run` for each workload RUNS times, interleaved (floor,
# kvmpt, floor, kvmpt, ...), and prints per workload:
#   - the median of the floor's own printed time and of kvmpt's wall time
#     (process start included, as the issue asks), and their ratio;
#   - kvmpt's peak RSS (/usr/bin/time -f %M, the max over the runs) against
#     the bar "table pages x 1.25 + 8 MiB".
# Each kvmpt transcript is also checked against the one recorded below, so
# a fast but wrong build does not pass.
#
# usage: Benchmarks/compare-floor.sh [RUNS]      (RUNS defaults to 5)
# env:   KVMPT=/path/to/kvmpt   use this binary instead of building one
#        SCRATCH=DIR            swift build scratch path
#                               (default: REPO/.build-compare, git-ignored)
#        SWIFT_BUILD_FLAGS=...  flags for that build (default:
#                               "--static-swift-stdlib", the way a Swift
#                               command-line tool ships on Linux; with the
#                               runtime linked dynamically an empty run
#                               already takes ~13 MiB, more than the bar's
#                               8 MiB allowance)
#        CC=gcc                 compiler for the floor (always -O2)
# exit:  0 all ratios <= 8 and peak RSS within the bar; 1 a ratio exceeds
#        8 or RSS exceeds the bar; 2 cannot build or run (e.g. floor.c
#        missing); 3 a kvmpt transcript differs.
set -euo pipefail

RUNS=${1:-5}
MAX_RATIO=8
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
FLOOR_SRC="$REPO/../shared/bench/floor.c"
CC=${CC:-gcc}

die() { echo "compare-floor: $*" >&2; exit 2; }

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
[[ -f "$FLOOR_SRC" ]] || die "the floor source is not at $FLOOR_SRC: clone the repo with ../shared beside it (shared/bench/floor.c)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (Debian: apt-get install time)"
command -v "$CC" >/dev/null || die "no C compiler '$CC'"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/compare-floor.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# --- build -----------------------------------------------------------------
echo "== build"
"$CC" -O2 -o "$WORK/floor" "$FLOOR_SRC" || die "cannot build $FLOOR_SRC"
echo "floor: $CC -O2 $FLOOR_SRC"
BUILT=
if [[ -n "${KVMPT:-}" ]]; then
    [[ -x "$KVMPT" ]] || die "KVMPT=$KVMPT is not an executable"
else
    SCRATCH=${SCRATCH:-$REPO/.build-compare}
    # shellcheck disable=SC2086  # word-splitting of the extra flags is wanted
    swift build -c release --package-path "$REPO" --scratch-path "$SCRATCH" --product kvmpt \
        ${SWIFT_BUILD_FLAGS---static-swift-stdlib} >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; die "swift build failed (log above)"; }
    KVMPT="$SCRATCH/release/kvmpt"
    BUILT="release ${SWIFT_BUILD_FLAGS---static-swift-stdlib}, "
fi
echo "kvmpt: $KVMPT (${BUILT:-}$(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo 'no git'))"

# --- the workloads ---------------------------------------------------------
# name | script | floor's MAPPED_BYTES | table pages at the peak | transcript
WORKLOADS=(A B)
declare -A SCRIPT BYTES PAGES EXPECT
SCRIPT[A]='stage2 granule=4K ia_bits=40
ioremap 0x100000000 8G 0x800000000
summary
unmap 0x100000000 8G
summary'
BYTES[A]=$((8 << 30))
PAGES[A]=4106
EXPECT[A]='# kvmpt v1 stage2 granule=4K ia_bits=40 start_level=1 root_pages=2 fwb=0 lpa2=0 tlbi_range=0
ioremap 0x100000000 0x200000000 0x800000000 = 0 | tlbi_ipa=0 tlbi_range=0 tlbi_vmid=0 dcache=0x0 icache=0x0 pages=+4104/-0
summary tables=4106 leaves=L1:0,L2:0,L3:2097152 fnv1a=0x6eeb0eb4a4e0255b
unmap 0x100000000 0x200000000 = 0 | tlbi_ipa=2101256 tlbi_range=0 tlbi_vmid=0 dcache=0x0 icache=0x0 pages=+0/-4104
summary tables=2 leaves=L1:0,L2:0,L3:0 fnv1a=0xcbf29ce484222325'
SCRIPT[B]='stage2 granule=4K ia_bits=40
map 0x100000000 16G 0x800001000 rw
summary
unmap 0x100000000 16G
summary'
BYTES[B]=$((16 << 30))
PAGES[B]=8210
EXPECT[B]='# kvmpt v1 stage2 granule=4K ia_bits=40 start_level=1 root_pages=2 fwb=0 lpa2=0 tlbi_range=0
map 0x100000000 0x400000000 0x800001000 rw = 0 | tlbi_ipa=0 tlbi_range=0 tlbi_vmid=0 dcache=0x400000000 icache=0x0 pages=+8208/-0
summary tables=8210 leaves=L1:0,L2:0,L3:4194304 fnv1a=0xb9c62325e2903ab0
unmap 0x100000000 0x400000000 = 0 | tlbi_ipa=4202512 tlbi_range=0 tlbi_vmid=0 dcache=0x400000000 icache=0x0 pages=+0/-8208
summary tables=2 leaves=L1:0,L2:0,L3:0 fnv1a=0xcbf29ce484222325'

for w in "${WORKLOADS[@]}"; do
    printf '%s\n' "${SCRIPT[$w]}" >"$WORK/$w.s2"
    printf '%s\n' "${EXPECT[$w]}" >"$WORK/$w.expected"
done

# --- interleaved runs --------------------------------------------------------
now() { echo "${EPOCHREALTIME/[.,]/}"; }    # microseconds, no fork

declare -A FLOOR_T KVMPT_T KVMPT_RSS
BAD_TRANSCRIPT=0
echo "== $RUNS rounds, interleaved: floor, kvmpt per workload (seconds; kvmpt RSS in KiB)"
for ((i = 1; i <= RUNS; i++)); do
    line="round $i:"
    for w in "${WORKLOADS[@]}"; do
        f=$("$WORK/floor" 4096 "${BYTES[$w]}") || die "floor failed"
        f=${f%% *}
        t0=$(now)
        /usr/bin/time -f %M -o "$WORK/rss" "$KVMPT" run "$WORK/$w.s2" >"$WORK/$w.out" 2>"$WORK/$w.err" \
            || { cat "$WORK/$w.err" >&2; die "kvmpt run $w.s2 failed"; }
        t1=$(now)
        k=$(awk -v us=$((t1 - t0)) 'BEGIN { printf "%.6f", us / 1e6 }')
        rss=$(tail -1 "$WORK/rss")
        if ! cmp -s "$WORK/$w.out" "$WORK/$w.expected"; then
            echo "workload $w: kvmpt's transcript differs from the recorded one:" >&2
            diff "$WORK/$w.expected" "$WORK/$w.out" >&2 || true
            BAD_TRANSCRIPT=1
        fi
        FLOOR_T[$w]+="$f "
        KVMPT_T[$w]+="$k "
        KVMPT_RSS[$w]+="$rss "
        line+="  $w floor $f kvmpt $k (${rss} KiB)"
    done
    echo "$line"
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maximum() { tr ' ' '\n' | grep . | sort -g | tail -1; }

# --- verdict -----------------------------------------------------------------
echo "== medians of $RUNS (bar: kvmpt/floor <= $MAX_RATIO, aim 4; peak RSS <= table pages x 1.25 + 8 MiB)"
printf '%-9s %12s %12s %8s %8s %15s %15s %6s\n' workload "floor s" "kvmpt s" ratio verdict "kvmpt RSS KiB" "bar KiB" memory
FAIL=0
for w in "${WORKLOADS[@]}"; do
    fm=$(median <<<"${FLOOR_T[$w]}")
    km=$(median <<<"${KVMPT_T[$w]}")
    ratio=$(awk -v k="$km" -v f="$fm" 'BEGIN { printf "%.2f", k / f }')
    rss=$(maximum <<<"${KVMPT_RSS[$w]}")
    bar=$(( PAGES[$w] * 4 * 5 / 4 + 8192 ))        # KiB: pages x 4 KiB x 1.25 + 8 MiB
    if awk -v r="$ratio" -v m=$MAX_RATIO 'BEGIN { exit !(r > m) }'; then verdict=FAIL; FAIL=1; else verdict=ok; fi
    if ((rss <= bar)); then mem=ok; else mem=OVER; FAIL=1; fi
    printf '%-9s %12s %12s %8s %8s %15s %15s %6s\n' "$w" "$fm" "$km" "${ratio}x" "$verdict" "$rss" "$bar" "$mem"
done
echo "(floor s: floor.c's own printed time; kvmpt s: wall time of the whole 'kvmpt run', process start included;"
echo " kvmpt RSS: the largest /usr/bin/time %M over the runs; bar: ${PAGES[A]} / ${PAGES[B]} table pages of 4 KiB)"

if ((BAD_TRANSCRIPT)); then
    echo "compare-floor: a kvmpt transcript differs from the recorded one (see above)" >&2
    exit 3
fi
if ((FAIL)); then
    echo "compare-floor: a ratio exceeds ${MAX_RATIO}x" >&2
    exit 1
fi
