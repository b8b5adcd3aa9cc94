#!/usr/bin/env bash
# Where W1's time goes: `perf` profiles of salpipe end to end and of the engine alone,
# written to bench/results/profile.txt (docs/performance.md quotes them).
#   scripts/bench_profile.sh [--build DIR]
# Needs `perf` (Debian: linux-perf) and the W1 configs and model that scripts/bench.sh
# leaves in DIR/bench (run `scripts/bench.sh --quick` once first). Profiles sample every
# thread of every process at 2 kHz; run it on a quiet machine, like the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
while [ $# -gt 0 ]; do
    case $1 in
        --build) build=$2; shift 2 ;;
        -h|--help) sed -n 2,7p "$0"; exit 0 ;;
        *) echo "bench_profile.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
work=$build/bench/work
model=$build/bench/alexnet.h5
for f in "$model" "$work/W1-n2-t1-none-c4.toml" "$work/W1-n1-t2-none-c4.toml" \
         "$build/pipeline/salpipe" "$build/bench/bench_core"; do
    [ -e "$f" ] || { echo "bench_profile.sh: $f missing: run scripts/bench.sh --quick first" >&2; exit 2; }
done
command -v perf >/dev/null || { echo "bench_profile.sh: perf not found (Debian: linux-perf)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=${MPIRUN:-mpirun}
out=bench/results/profile.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# report DATA: share of samples per library, the top functions, and per thread the
# time of its first and last sample and of its first and last sample in OpenBLAS,
# SHA-256 and zlib (seconds from the first sample of the run).
report() {
    echo "-- samples per library (all processes and threads)"
    perf report -i "$1" --no-children -g none --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' | sed -n 1,12p
    echo "-- top functions"
    perf report -i "$1" --no-children -g none --sort dso,sym 2>/dev/null | grep -v '^#' | grep -v '^$' | sed -n 1,25p
    echo "-- timeline per thread with >= 50 samples (s from the first sample)"
    perf script -G -i "$1" -F comm,tid,time,ip,sym,dso 2>/dev/null | awk '
        { t = $3; sub(":", "", t); t += 0; k = $1 " " $2 }
        NR == 1 { t0 = t }
        { if (!(k in a)) a[k] = t; b[k] = t; n[k]++
          if ($0 ~ /libopenblas/) { if (!(k in ga)) ga[k] = t; gb[k] = t }
          if ($0 ~ /sha256/)      { if (!(k in ha)) ha[k] = t; hb[k] = t }
          if ($0 ~ /libz\./)      { if (!(k in za)) za[k] = t; zb[k] = t } }
        function span(x, y, k) { return (k in x) ? sprintf("%5.2f-%5.2f", x[k] - t0, y[k] - t0) : "     -     " }
        END { printf "%-22s %7s %11s %11s %11s %11s\n", "process thread", "samples", "alive", "OpenBLAS", "SHA-256", "zlib"
              for (k in n) if (n[k] >= 50)
                  printf "%-22s %7d %11s %11s %11s %11s\n", k, n[k], span(a, b, k), span(ga, gb, k), span(ha, hb, k), span(za, zb, k) }'
}

{
    echo "salpipe profiles, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    for cfg in W1-n2-t1-none-c4 W1-n1-t2-none-c4; do
        n=${cfg:4:1}
        echo
        echo "== $MPIRUN -n $n --bind-to none salpipe $cfg.toml (perf record -F 2000 -g)"
        /usr/bin/time -f "wall %e s" -o "$tmp/time" perf record -q -F 2000 -g -o "$tmp/$cfg.data" -- \
            "$MPIRUN" -n "$n" --bind-to none "$build/pipeline/salpipe" --quiet --overwrite \
            "$work/$cfg.toml" >/dev/null 2>"$tmp/$cfg.err" || { cat "$tmp/$cfg.err"; exit 1; }
        echo "$(cat "$tmp/time") (under perf, which adds its own start-up and write-out)"
        report "$tmp/$cfg.data"
    done
    echo
    echo "== engine alone: bench_core, AlexNet batch 8, 1 thread, 3 reps (perf record --call-graph dwarf)"
    OPENBLAS_NUM_THREADS=1 perf record -q -F 500 --call-graph dwarf,16384 -o "$tmp/core.data" -- \
        "$build/bench/bench_core" "$model" 8 3 f32 2>&1 | tail -1
    echo "-- share of samples per engine function, callees included"
    perf report -i "$tmp/core.data" --children -g none --sort sym 2>/dev/null |
        grep -E 'sal_engine_run|_(forward|backward)_f32|backward_(vanilla|guided|deconvnet)' | sed -n 1,20p
} > "$out"
cat "$out"
echo "wrote $out"
