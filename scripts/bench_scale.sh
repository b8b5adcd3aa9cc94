#!/usr/bin/env bash
# Issue 14's measurements: per-rank production rates, writer capacity, the
# 1..1,024-rank keep-up sweep, and parallel HDF5 against part files. Appends one
# JSON record per measurement to WORK/records.jsonl; bench/bench_scale_report.py
# turns them into the figures of docs/performance.md and docs/cluster.md.
#
#   scripts/bench_scale.sh [--build DIR] [--reps N] [STAGE...]
#   STAGE: rates capacity sweep phdf5 (default: all, in that order)
#   SWEEP_RANKS="8 16 32", SWEEP_MODELS=alexnet (environment): the sweep's rank
#   counts (default 64..1024) and networks (default all three)
#
# Needs a built tree (bench_writers, and bench_phdf5 for the phdf5 stage, which is
# skipped when Debian's libhdf5-openmpi-dev was not found), the models AlexNet,
# VGG16 and ResNet-50 in WORK (exported with scripts/export_torchvision.py, or
# copied from scripts/bench.sh's build/bench/), and the shared photo. Never a test.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build
reps=5
stages=()
while [ $# -gt 0 ]; do
    case $1 in
        --build) build=$(cd "$2" && pwd); shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        rates|capacity|sweep|phdf5) stages+=("$1"); shift ;;
        *) echo "usage: $0 [--build DIR] [--reps N] [rates|capacity|sweep|phdf5]..." >&2; exit 2 ;;
    esac
done
[ ${#stages[@]} -eq 0 ] && stages=(rates capacity sweep phdf5)
py=${SALPIPE_PYTHON:-/usr/bin/python3}
mpirun=${MPIRUN:-mpirun}
work=$build/scale
rec=$work/records.jsonl
mkdir -p "$work/out" "$work/wdir"
# Development containers run as root; users running as themselves need neither.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
photo=$here/../shared/data/n03223299_27176.JPEG

for m in alexnet vgg16 resnet50; do
    if [ ! -f "$work/$m.h5" ]; then
        if [ -f "$build/bench/$m.h5" ]; then cp "$build/bench/$m.h5" "$work/"
        else "$py" "$here/scripts/export_torchvision.py" "$m" -o "$work/$m.h5" || exit 2
        fi
    fi
done
if [ ! -f "$work/all.txt" ]; then
    (cd "$work" && "$py" "$here/bench/bench_images.py" "$photo" img 16 | sed "s|^|$work/|" > all.txt) || exit 2
fi

# The bench configs: fc3 (fc for ResNet) units 540 and 23, vanilla + guided,
# compression 4, one thread, as scripts/bench.sh's W1/W2/W3.
config() { # name model layer list batch
    cat > "$work/$1.toml" <<EOF
[model]
path = "$work/$2.h5"
[images]
list = "$work/$4"
[[targets]]
layer = "$3"
units = [540, 23]
[saliency]
methods = ["vanilla", "guided"]
[output]
path = "$work/out/$1.h5"
compression = 4
[run]
batch = $5
threads = 1
EOF
}
# Each model twice, N and 2N images (the rates stage); the 2N run's output is the
# chunk source of the other stages.
head -8 "$work/all.txt" > "$work/alexnet_small.txt"
cp "$work/all.txt" "$work/alexnet_big.txt"
head -4 "$work/all.txt" > "$work/vgg16_small.txt"
head -8 "$work/all.txt" > "$work/vgg16_big.txt"
head -4 "$work/all.txt" > "$work/resnet50_small.txt"
head -8 "$work/all.txt" > "$work/resnet50_big.txt"
for size in small big; do
    config alexnet-$size alexnet fc3 alexnet_$size.txt 8
    config vgg16-$size vgg16 fc3 vgg16_$size.txt 4
    config resnet50-$size resnet50 fc resnet50_$size.txt 4
done

note() { printf '%s\n' "$1" >> "$rec"; }
load() { cut -d' ' -f1 /proc/loadavg; }

stage_rates() {
    # One rank's production rate, compression included, two ways: salpipe's
    # progress line (maps/s from the plan to the last map, wall time: slowed by
    # whatever else runs on this shared machine), and maps per CPU second of the
    # process between a run of N and one of 2N images (start-up cancels out; what a
    # rank with a core of its own makes).
    for r in $(seq "$reps"); do
        for m in alexnet vgg16 resnet50; do
            l0=$(load)
            local cpu_s cpu_b rate
            for size in small big; do
                out=$(/usr/bin/time -f 'cpu %U %S' "$build/pipeline/salpipe" --overwrite \
                      "$work/$m-$size.toml" 2>&1)
                cpu=$(printf '%s\n' "$out" | awk '/^cpu /{print $2 + $3}')
                [ $size = small ] && cpu_s=$cpu || cpu_b=$cpu
                rate=$(printf '%s\n' "$out" | grep -o '[0-9.]* maps/s' | tail -1 | cut -d' ' -f1)
            done
            n=$(wc -l < "$work/${m}_small.txt")
            cpurate=$("$py" -c "print(round($n * 4 / ($cpu_b - $cpu_s), 2))" 2>/dev/null)
            echo "rates: $m rep $r: ${rate:-FAILED} maps/s wall (2N run), ${cpurate:-?} maps per CPU s (load $l0)"
            note "{\"stage\": \"rates\", \"model\": \"$m\", \"rep\": $r, \"maps_per_s\": ${rate:-null}, \"maps_per_cpu_s\": ${cpurate:-null}, \"load\": $l0}"
        done
    done
}

bw() { # tag args...: one bench_writers run, its summary and writer lines recorded
    local tag=$1 np=$2; shift 2
    local l0; l0=$(load)
    local out
    out=$("$mpirun" -n "$np" --oversubscribe "$build/bench/bench_writers" --json \
          --dir "$work/wdir" "$@" 2>&1)
    local rc=$?
    printf '%s\n' "$out" | grep '^{' | sed "s|^{|{\"stage\": \"$tag\", \"load\": $l0, |" >> "$rec"
    printf '%s\n' "$out" | grep '"summary"' | sed 's/^/  /'
    [ $rc -eq 0 ] || echo "  FAILED ($rc): $out" | tail -5
}

stage_capacity() {
    # As fast as the writers take them: each writer's sustained ingest.
    for r in $(seq "$reps"); do
        for kp in 1:1 1:2 1:4 1:8 2:2 2:4 2:8 4:4 4:8; do
            k=${kp%:*} p=${kp#*:}
            echo "capacity: rep $r, $k writers, $p producers"
            bw capacity $((k + p)) --writers "$k" --batches $((160 / p)) \
               --chunks "$work/out/alexnet-big.h5"
        done
    done
}

median_rate() { # model: the median of the rates stage (per CPU second)
    "$py" - "$rec" "$1" <<'EOF'
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
v = [r["maps_per_cpu_s"] for r in rs if r.get("stage") == "rates" and r.get("model") == sys.argv[2]
     and r.get("maps_per_cpu_s")]
print(statistics.median(v) if v else "")
EOF
}

stage_sweep() {
    # 8 producers stand for RANKS ranks at the measured per-rank rate.
    for m in ${SWEEP_MODELS:-alexnet vgg16 resnet50}; do
        rate=$(median_rate $m)
        [ -n "$rate" ] || { echo "sweep: no rate for $m: run the rates stage first" >&2; return 1; }
        for ranks in ${SWEEP_RANKS:-64 128 256 512 1024}; do
            for k in 1 2 4; do
                p=$((ranks < 8 ? ranks : 8)) each=$((ranks < 8 ? 1 : ranks / 8))
                # About 4 s of the offer per producer, at least 3 batches.
                b=$("$py" -c "import math; print(max(3, math.ceil(4 * $rate * $each / 32)))")
                [ "$b" -gt 40 ] && b=40
                echo "sweep: $m, $ranks ranks at $rate maps/s, $k writers ($b batches each)"
                bw "sweep-$m" $((k + p)) --writers "$k" --batches "$b" --rate "$rate" \
                   --ranks "$each" --chunks "$work/out/$m-big.h5"
            done
        done
    done
}

stage_phdf5() {
    if [ ! -x "$build/bench/bench_phdf5" ]; then
        echo "phdf5: bench_phdf5 not built (no libhdf5-openmpi-dev): skipped"
        return 0
    fi
    for r in $(seq "$reps"); do
        for k in 1 2; do
            for mode in parts-direct parts-filter parts-raw shared-coll-filter \
                        shared-coll-raw shared-indep-raw shared-direct; do
                l0=$(load)
                out=$("$mpirun" -n $k --oversubscribe "$build/bench/bench_phdf5" \
                      --chunks "$work/out/alexnet-big.h5" --mode $mode --maps 256 \
                      --dir "$work/wdir" 2>&1)
                # The timing line, then the read-back line.
                lines=$(printf '%s\n' "$out" | grep '^{')
                echo "phdf5: rep $r: ${lines:-FAILED: $(printf '%s' "$out" | tail -3)}"
                [ -n "$lines" ] && printf '%s\n' "$lines" |
                    sed "s|^{|{\"stage\": \"phdf5\", \"rep\": $r, \"load\": $l0, |" >> "$rec"
            done
        done
    done
}

for s in "${stages[@]}"; do "stage_$s"; done
echo "records: $rec"
