#!/usr/bin/env bash
# The throughput benchmark of issues 6, 11, 12 and 13: salpipe end to end (default
# "fast" and "direct" convolutions) against DNNBrain's PyTorch loop and three batched
# PyTorch strategies, the float32 maps' error against float64 next to each speed,
# SmoothGrad against batched PyTorch and a Captum-style loop, the sgemm roofline, peak
# memory per rank and rank 0's writing capacity, all measured in one run on this machine.
# docs/performance.md explains every figure.
#
#   scripts/bench.sh [--quick] [--reps N] [--build DIR] [--no-build] [--only LIST]
#
#   --quick      1 repetition, fewer images (W1 16, W2 2, W3 4, W4 2): a smoke run
#                (a full run, --reps 3 with every workload: ~25-30 min on 2 cores)
#   --reps N     repetitions per measurement, the median is reported (default 3)
#   --build DIR  build directory (default build); it is (re)built unless --no-build
#   --only LIST  some of W1 (AlexNet), W2 (VGG16), W3 (ResNet-50), W4 (AlexNet
#                SmoothGrad), R152 (ResNet-152's peak memory at batch 8),
#                comma-separated; default all of them
#
# Writes bench/results/latest.txt (also printed), bench/results/latest.json and
# docs/img/performance.png; with --only, latest-LIST.txt, latest-LIST.json and
# performance-LIST.png instead (e.g. latest-W3-R152.txt). Scratch files (models,
# images, outputs, logs) go to DIR/bench/. Exit status 0 when every measurement ran,
# 1 when some failed (the report lists them), 2 on a usage or setup error.
# The whole script is one { ... } block, so bash reads all of it before running any:
# editing this file while a benchmark runs cannot change the running one.
{
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
repo=$PWD

quick=0 reps=3 build=build dobuild=1 only=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --reps) reps=${2:?--reps needs a number}; shift ;;
    --only) only=${2:?--only needs a list like W3,R152}; shift ;;
    --build) build=${2:?--build needs a directory}; shift ;;
    --no-build) dobuild=0 ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$reps" in ''|*[!0-9]*|0) echo "bench.sh: --reps wants a positive integer" >&2; exit 2 ;; esac
[ "$quick" = 1 ] && reps=1
# The workloads to run (W1-W4 compute maps; R152 measures memory only).
wls=(W1 W2 W3 W4) do152=1 suffix=
if [ -n "$only" ]; then
  wls=() do152=0 suffix=-$(printf '%s' "$only" | tr ', ' '--')
  for w in $(printf '%s' "$only" | tr ',' ' '); do
    case "$w" in
      W1|W2|W3|W4) wls+=("$w") ;;
      R152) do152=1 ;;
      *) echo "bench.sh: --only takes W1, W2, W3, W4 and R152, not '$w'" >&2; exit 2 ;;
    esac
  done
fi
has() { case " ${wls[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

# This is a developer tool that we run as root in containers; Open MPI refuses root
# unless told otherwise. Users running as themselves do not need these.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Debian's interpreter has torch/torchvision/PIL/h5py; another python3 may shadow it.
py=${SALPIPE_PYTHON:-/usr/bin/python3}
mpirun=${MPIRUN:-mpirun}
photo=$repo/../shared/data/n03223299_27176.JPEG
[ -f "$photo" ] || { echo "bench.sh: $photo not found (the shared/ directory next to the repo)" >&2; exit 2; }

if [ "$dobuild" = 1 ]; then
  blog=$(mktemp)
  if ! { cmake -S . -B "$build" -DPython3_EXECUTABLE="$py" &&
         cmake --build "$build" -j "$(nproc)" \
           --target salpipe bench_core sgemm_rate bench_counts test_output noise_dump; } \
         > "$blog" 2>&1; then
    tail -n 30 "$blog" >&2
    echo "bench.sh: build failed (cmake --build $build), full log in $blog" >&2
    exit 2
  fi
  rm -f "$blog"
fi
build=$(cd "$build" && pwd)
salpipe=$build/pipeline/salpipe
for b in "$salpipe" "$build/bench/bench_core" "$build/bench/sgemm_rate" \
         "$build/bench/bench_counts" "$build/tests/test_output" "$build/tests/noise_dump"; do
  [ -x "$b" ] || { echo "bench.sh: $b missing; build first (or drop --no-build)" >&2; exit 2; }
done

work=$build/bench/work
rm -rf "$work" && mkdir -p "$work/out" "$work/log" bench/results docs/img || exit 2
rec=$work/records.jsonl
: > "$rec"
failed=0

# ---- helpers ---------------------------------------------------------------------

now() { date +%s.%N; }
say() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
record() { printf '%s\n' "$1" >> "$rec"; }
first() { [ -f "$1" ] && echo "$1"; }  # the first of a glob's matches, if any
fail() {  # section, message
  say "FAILED: $1: $2"
  record "{\"kind\":\"error\",\"section\":\"$1\",\"message\":\"$(printf '%s' "$2" | tr '"\\\n' "'/ ")\"}"
  failed=1
}

vanilla_guided='methods = ["vanilla", "guided"]'
# write_config FILE MODEL LIST BATCH THREADS COMPRESSION OUTPUT [LAYER [UNITS [SALIENCY
#              [CONVOLUTION [PRECISION]]]]]
# UNITS defaults to "540, 23"; SALIENCY (the [saliency] table's lines) to vanilla + guided;
# CONVOLUTION to "fast" (salpipe's default), PRECISION to "float32".
write_config() {
  cat > "$1" <<EOF
[model]
path = "$2"
[images]
list = "$3"
[[targets]]
layer = "${8:-fc3}"
units = [${9:-540, 23}]
[saliency]
${10:-$vanilla_guided}
[output]
path = "$7"
compression = $6
[run]
batch = $4
threads = $5
convolution = "${11:-fast}"
precision = "${12:-float32}"
EOF
}

# salpipe_run WL RANKS THREADS BIND COMPRESSION ROLE [CONVOLUTION]
# Times one `mpirun -n RANKS salpipe --overwrite CONFIG` (wall time of the whole
# command, fresh output) and records it; ROLE is main or probe, CONVOLUTION fast (the
# default) or direct. Sets last_rate (maps/s).
salpipe_run() {
  local wl=$1 n=$2 t=$3 bind=$4 comp=$5 role=$6 conv=${7:-fast}
  local model=${wl_model[$wl]} list=$work/$wl.txt batch=${wl_batch[$wl]}
  local tag=$wl-n$n-t$t-$bind-c$comp-$conv
  local cfg=$work/$tag.toml out=$work/out/$tag.h5 log=$work/log/$tag.log
  local maps=$((wl_images[$wl] * ${wl_maps_per_image[$wl]:-4})) t0 t1 dt rate
  write_config "$cfg" "$model" "$list" "$batch" "$t" "$comp" "$out" "${wl_layer[$wl]}" \
    "${wl_units[$wl]:-540, 23}" "${wl_saliency[$wl]:-$vanilla_guided}" "$conv"
  last_rate=0
  t0=$(now)
  "$mpirun" -n "$n" --bind-to "$bind" "$salpipe" --overwrite "$cfg" > "$log" 2>&1
  local status=$?
  t1=$(now)
  if [ $status -ne 0 ]; then
    fail "salpipe $tag" "exit status $status, see $log: $(tail -n 3 "$log")"
    return 1
  fi
  dt=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.4f", a - b }')
  last_rate=$(awk -v m="$maps" -v t="$dt" 'BEGIN { printf "%.4f", m / t }')
  rate=$(grep -o '[0-9.]* maps/s' "$log" | tail -n 1 | cut -d' ' -f1)
  say "salpipe $wl -n $n threads=$t --bind-to $bind compression $comp $conv: $(printf '%.2f s, %.2f maps/s' "$dt" "$last_rate")"
  record "{\"kind\":\"salpipe\",\"wl\":\"$wl\",\"role\":\"$role\",\"ranks\":$n,\"threads\":$t,\"bind\":\"$bind\",\"compression\":$comp,\"convolution\":\"$conv\",\"batch\":$batch,\"images\":${wl_images[$wl]},\"maps\":$maps,\"times\":[$dt],\"reported_maps_per_s\":[${rate:-null}],\"output\":\"$out\"}"
}

faster() {  # rateA rateB: succeeds when A > B
  awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'
}

sg_torch_run() {  # MODE LISTFILE [bench_smoothgrad.py options]: W4, one repetition, recorded
  local mode=$1 list=$2; shift 2
  local log=$work/log/torch-W4-$mode.log
  if OMP_NUM_THREADS=2 "$py" bench/bench_smoothgrad.py "$mode" alexnet "$list" 540 \
       --samples 50 --noise 0.15 --reps 1 --threads 2 "$@" > "$log" 2> "$log.err"; then
    say "PyTorch W4 SmoothGrad $mode: $(printf '%.3f' "$(grep -o '"maps_per_s": [0-9.e+-]*' "$log" | cut -d' ' -f2)") maps/s"
    record "{\"kind\":\"torch\",\"wl\":\"W4\",\"result\":$(tail -n 1 "$log")}"
  else
    fail "torch W4 $mode" "see $log.err: $(tail -n 2 "$log.err")"
  fi
}

torch_run() {  # WL TAG MODE LISTFILE [bench_torch.py options]: one repetition, recorded
  local wl=$1 tag=$2 mode=$3 list=$4; shift 4
  local log=$work/log/torch-$wl-$tag.log
  if OMP_NUM_THREADS=2 "$py" bench/bench_torch.py "$mode" "${wl_arch[$wl]}" "$list" 540,23 \
       --reps 1 --threads 2 "$@" > "$log" 2> "$log.err"; then
    say "PyTorch $wl $tag: $(printf '%.2f' "$(grep -o '"maps_per_s": [0-9.e+-]*' "$log" | cut -d' ' -f2)") maps/s"
    record "{\"kind\":\"torch\",\"wl\":\"$wl\",\"result\":$(tail -n 1 "$log")}"
  else
    fail "torch $wl $tag" "see $log.err: $(tail -n 2 "$log.err")"
  fi
}

# ---- setup: machine, models, images ------------------------------------------------

say "mode $([ "$quick" = 1 ] && echo quick || echo full), $reps repetition(s); scratch in $work"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
gitrev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
gitdirty=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
record "{\"kind\":\"meta\",\"date\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"host\":\"$(hostname)\",\"cpu\":\"$cpu\",\"nproc\":$(nproc),\"mem_gb\":$(awk '/MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo),\"load_start\":\"$load0\",\"commit\":\"$gitrev\",\"dirty_files\":$gitdirty,\"quick\":$quick,\"reps\":$reps,\"workloads\":\"${wls[*]}$([ "$do152" = 1 ] && echo ' R152')\",\"mpirun\":\"$("$mpirun" --version 2>/dev/null | head -n 1)\",\"salpipe\":\"$("$salpipe" --version 2>/dev/null | head -n 1)\"}"

declare -A wl_arch=([W1]=alexnet [W2]=vgg16 [W3]=resnet50 [W4]=alexnet [R152]=resnet152) \
           wl_layer=([W1]=fc3 [W2]=fc3 [W3]=fc [W4]=fc3 [R152]=fc) wl_model wl_batch wl_images \
           wl_dnnbrain
# W4 (issue 12): one target, one method, SmoothGrad of the guided map with 50 copies.
declare -A wl_units=([W4]=540) wl_maps_per_image=([W4]=1) \
           wl_saliency=([W4]=$'methods = ["smoothgrad"]\n[saliency.smoothgrad]\nsamples = 50\nnoise = 0.15\nbase = "guided"')
exports=("${wls[@]}")
[ "$do152" = 1 ] && exports+=(R152)
for wl in "${exports[@]}"; do
  wl_model[$wl]=$build/bench/${wl_arch[$wl]}.h5
  if [ ! -f "${wl_model[$wl]}" ]; then
    say "exporting seeded random ${wl_arch[$wl]} to ${wl_model[$wl]}"
    "$py" scripts/export_torchvision.py "${wl_arch[$wl]}" -o "${wl_model[$wl]}" --seed 0 >/dev/null ||
      { echo "bench.sh: export of ${wl_arch[$wl]} failed" >&2; exit 2; }
  fi
done
# W1: 32 images in batches of 8 (4 batches: both ranks of -n 2 get work).
# W2: 16 images in batches of 4 (issue 13: enough work that start-up is not the story;
# 4 batches, 2 per rank of -n 2). W3: 16 images in batches of 4 (4 batches, as W1). W4: 8 images
# in batches of 2 (SmoothGrad's 50 copies of an image are the engine's batch columns
# whatever the batch; 4 batches share the two ranks). DNNBrain's loop (W4: the
# Captum-style loop) is timed on a subset (it is 10-100x slower).
if [ "$quick" = 1 ]; then
  wl_images=([W1]=16 [W2]=2 [W3]=4 [W4]=2) wl_batch=([W1]=8 [W2]=1 [W3]=2 [W4]=1)
  wl_dnnbrain=([W1]=2 [W2]=1 [W3]=1 [W4]=1)
else
  wl_images=([W1]=32 [W2]=16 [W3]=16 [W4]=8) wl_batch=([W1]=8 [W2]=4 [W3]=4 [W4]=2)
  wl_dnnbrain=([W1]=8 [W2]=2 [W3]=2 [W4]=1)
fi
say "making 32 test images from $(basename "$photo")"
"$py" bench/bench_images.py "$photo" "$work/img" 32 > "$work/all.txt" ||
  { echo "bench.sh: making the test images failed" >&2; exit 2; }
for wl in "${wls[@]}"; do
  head -n "${wl_images[$wl]}" "$work/all.txt" > "$work/$wl.txt"
  head -n "${wl_dnnbrain[$wl]}" "$work/all.txt" > "$work/$wl-dnnbrain.txt"
done

# ---- binding -------------------------------------------------------------------

# One run of each of --bind-to core and --bind-to none for the two main configurations
# on W1; the faster one is used from then on. (--bind-to core with one rank pins both
# of its BLAS threads to one core.) In --quick mode these probes are also the
# measurements of those two configurations.
# Without W1, --bind-to none (the choice of every quiet run so far).
declare -A best_bind=([1]=none [2]=none)
for cfg in "1 2" "2 1"; do
  has W1 || break
  read -r n t <<< "$cfg"
  set -- "$n" "$t"
  salpipe_run W1 "$1" "$2" none 4 probe; r_none=$last_rate
  salpipe_run W1 "$1" "$2" core 4 probe; r_core=$last_rate
  if faster "$r_core" "$r_none"; then best_bind[$1]=core; else best_bind[$1]=none; fi
  say "binding for -n $1 threads=$2: --bind-to ${best_bind[$1]}"
done

# ---- 1, 2, 3: salpipe and PyTorch, round robin ----------------------------------

# Each repetition runs every configuration once, so a change of load during the
# benchmark hits all of them alike; the report takes the median over repetitions.
# salpipe runs are WL RANKS THREADS COMPRESSION [CONVOLUTION]: -n 1 threads=1 is there
# for the scaling target (-n 2 against one single-threaded rank), compression 0 shows
# what deflate costs, "direct" what the fast (Winograd) convolutions gain (issue 13),
# "fastest" what a Winograd forward adds (opt-in; reported beside the default).
# PyTorch: DNNBrain's loop on a subset, the three batched strategies.
if [ "$quick" = 1 ]; then
  runs=("W1 1 1 4" "W1 1 2 0" "W1 2 1 0" "W1 2 1 4 direct" "W1 1 1 4 direct"
        "W2 1 2 4" "W2 2 1 4" "W2 1 1 4" "W2 2 1 4 direct" "W2 1 1 4 direct"
        "W3 1 2 4" "W3 2 1 4" "W4 1 2 4" "W4 2 1 4" "W4 2 1 4 fastest")
else
  runs=("W1 1 2 4" "W1 2 1 4" "W1 1 1 4" "W1 1 2 0" "W1 2 1 0" "W1 1 1 0"
        "W1 2 1 4 direct" "W1 1 1 4 direct"
        "W1 2 1 4 fastest"
        "W2 1 2 4" "W2 2 1 4" "W2 1 1 4" "W2 2 1 0" "W2 2 1 4 direct" "W2 1 1 4 direct"
        "W2 2 1 4 fastest"
        "W3 1 2 4" "W3 2 1 4" "W3 1 1 4" "W3 2 1 0" "W4 1 2 4" "W4 2 1 4"
        "W4 2 1 4 fastest")
fi
for ((rep = 1; rep <= reps; rep++)); do
  say "---- repetition $rep of $reps"
  for run in "${runs[@]}"; do
    read -r w n t c v <<< "$run"
    has "$w" || continue
    set -- "$w" "$n" "$t" "$c" "${v:-fast}"
    salpipe_run "$1" "$2" "$3" "${best_bind[$2]}" "$4" main "$5"
  done
  for wl in "${wls[@]}"; do
    if [ "$wl" = W4 ]; then  # SmoothGrad: the loop on a subset, the copies as one batch
      sg_torch_run loop "$work/W4-dnnbrain.txt"
      sg_torch_run batched "$work/W4.txt"
      continue
    fi
    torch_run "$wl" dnnbrain dnnbrain "$work/$wl-dnnbrain.txt"
    for strategy in retain repeat vmap; do
      dump=()
      [ "$rep" = 1 ] && dump=(--dump "$work/$wl-torch-$strategy.npy")
      torch_run "$wl" "batched-$strategy" batched "$work/$wl.txt" \
        --batch "${wl_batch[$wl]}" --strategy "$strategy" "${dump[@]}"
    done
  done
done

# Same maps? salpipe's output against PyTorch's maps of the first image. float32 maps
# of deep units differ by up to a few percent between any two implementations (max-pool
# near-ties, docs/saliency.md); a wrong image order or rule would differ by ~100%.
for wl in "${wls[@]}"; do
  out=$(first "$work/out/$wl"-n1-t2-*-c4-fast.h5)
  if [ -n "$out" ] && [ -f "$work/$wl-torch-retain.npy" ]; then
    "$py" bench/bench_report.py check "$wl" "$out" "$work/$wl-torch-retain.npy" \
      "${wl_images[$wl]}" >> "$rec" || fail "check $wl" "bench_report.py check failed"
  fi
done

# The float32 error next to the speed (issue 13): image 0's maps of every salpipe
# configuration (its output of the last repetition) against salpipe's float64 maps of
# that image (precision = "float64", direct in both convolution modes), and every
# batched PyTorch strategy's (its --dump of repetition 1) against PyTorch's float64
# maps; salpipe's and PyTorch's float64 maps against each other show that the two
# references agree. bench_report.py errors prints one record per comparison: the
# relative L2 distance ||a - b|| / ||b|| of each (unit, method) map and the largest.
for wl in "${wls[@]}"; do
  [ "$wl" = W4 ] && continue  # W4's float32 noise is itself the sample: no float64 twin
  tag=$wl-f64
  head -n 1 "$work/$wl.txt" > "$work/$wl-first.txt"
  write_config "$work/$tag.toml" "${wl_model[$wl]}" "$work/$wl-first.txt" 1 2 0 \
    "$work/out/$tag.h5" "${wl_layer[$wl]}" "540, 23" "$vanilla_guided" direct float64
  say "$wl: float64 maps of image 0 (salpipe and PyTorch), the reference of the float32 error"
  if ! "$mpirun" -n 1 --bind-to none "$salpipe" --overwrite "$work/$tag.toml" \
         > "$work/log/$tag.log" 2>&1; then
    fail "salpipe $tag" "see $work/log/$tag.log: $(tail -n 3 "$work/log/$tag.log")"
    continue
  fi
  if ! OMP_NUM_THREADS=2 "$py" bench/bench_torch.py batched "${wl_arch[$wl]}" \
         "$work/$wl-first.txt" 540,23 --reps 0 --threads 2 --batch 1 --dtype float64 \
         --dump "$work/$wl-torch-f64.npy" > "$work/log/torch-$tag.log" 2>&1; then
    fail "torch $tag" "see $work/log/torch-$tag.log: $(tail -n 2 "$work/log/torch-$tag.log")"
    continue
  fi
  "$py" bench/bench_report.py errors "$wl" "$work" >> "$rec" ||
    fail "errors $wl" "bench_report.py errors failed"
done

# W4: salpipe's SmoothGrad of image 0 against PyTorch's with the same noise (the C
# generator's, from noise_dump): they agree to ~4e-4 of the maximum in float32 (ReLU
# and max-pool near-ties of the noisy copies); other noise or a wrong base would
# differ by tens of percent.
out=$(first "$work"/out/W4-n1-t2-*-c4-fast.h5)
if has W4 && [ -n "$out" ]; then
  say "W4 check: salpipe's SmoothGrad of image 0 against PyTorch with salpipe's noise"
  if "$build/tests/noise_dump" 0 0 50 $((3 * 224 * 224)) "$work/W4-noise.npy" &&
     "$py" bench/bench_smoothgrad.py check alexnet "$(head -n 1 "$work/W4.txt")" 540 \
       "$work/W4-noise.npy" "$out" --noise 0.15 > "$work/log/W4-check.log" 2>&1; then
    tail -n 1 "$work/log/W4-check.log" >> "$rec"
  else
    fail "check W4" "see $work/log/W4-check.log"
  fi
  rm -f "$work/W4-noise.npy"
fi

# ---- roofline: counted FLOPs, sgemm rate, the core alone ----------------------------

for wl in "${wls[@]}"; do
  [ "$wl" = W4 ] && continue  # the counts and the core alone are for the W1-W3 engines
  say "counting $wl's FLOPs (bench_counts, batch ${wl_batch[$wl]})"
  if c=$(OPENBLAS_NUM_THREADS=2 "$build/bench/bench_counts" "${wl_model[$wl]}" "${wl_batch[$wl]}" 2>&1); then
    record "{\"kind\":\"counts\",\"wl\":\"$wl\",\"batch\":${wl_batch[$wl]},$(echo "$c" | sed 's/^\(.*\)=\(.*\)$/"\1":\2/' | paste -sd,)}"
  else
    fail "bench_counts $wl" "$c"
  fi
done

sgemm_n=2048 sgemm_reps=$([ "$quick" = 1 ] && echo 5 || echo 9)
say "OpenBLAS sgemm ${sgemm_n}^3: 1 thread, 2 threads, and 2 processes x 1 thread"
for t in 1 2; do
  if s=$(OPENBLAS_NUM_THREADS=$t "$build/bench/sgemm_rate" "$sgemm_n" "$sgemm_reps"); then
    record "{\"kind\":\"sgemm\",\"procs\":1,\"threads\":$t,\"n\":$sgemm_n,\"kernels\":\"$(echo "$s" | grep -o 'OpenBLAS kernels [A-Za-z0-9_]*' | head -n 1 | cut -d' ' -f3)\",\"gflops\":[$(echo "$s" | grep -o 'median [0-9.]*' | cut -d' ' -f2)]}"
  else
    fail "sgemm $t threads" "$s"
  fi
done
# Two single-threaded processes at once, placed as salpipe's -n 2 ranks are.
if s=$("$mpirun" -n 2 --bind-to "${best_bind[2]}" -x OPENBLAS_NUM_THREADS=1 \
         "$build/bench/sgemm_rate" "$sgemm_n" "$sgemm_reps" 2>&1); then
  record "{\"kind\":\"sgemm\",\"procs\":2,\"threads\":1,\"n\":$sgemm_n,\"bind\":\"${best_bind[2]}\",\"gflops\":[$(echo "$s" | grep -o 'median [0-9.]*' | cut -d' ' -f2 | paste -sd,)]}"
else
  fail "sgemm 2 x 1 thread" "$s"
fi

core_reps=$([ "$quick" = 1 ] && echo 3 || echo 5)
for wl in "${wls[@]}"; do
  [ "$wl" = W4 ] && continue
  [ "$quick" = 1 ] && [ "$wl" != W1 ] && continue
  for t in 2 1; do
    [ "$wl" != W1 ] && [ "$t" = 1 ] && continue
    say "core alone ($wl, bench_core batch ${wl_batch[$wl]}, $t thread(s), $core_reps runs)"
    # as salpipe runs it: GEMM parts on a team of t threads, OpenBLAS single-threaded
    if s=$(OPENBLAS_NUM_THREADS=1 "$build/bench/bench_core" "${wl_model[$wl]}" "${wl_batch[$wl]}" "$core_reps" f32 "$t" 2>&1); then
      record "{\"kind\":\"core\",\"wl\":\"$wl\",\"threads\":$t,\"batch\":${wl_batch[$wl]},\"median_ms\":$(echo "$s" | grep -o 'median [0-9.]*' | cut -d' ' -f2)}"
    else
      fail "bench_core $wl $t threads" "$s"
    fi
  done
done

# ---- peak memory per rank (W1, batch 8) --------------------------------------------

for cfg in "1 2" "2 1"; do
  has W1 || break
  read -r n t <<< "$cfg"
  set -- "$n" "$t"
  tag=W1-mem-n$1
  write_config "$work/$tag.toml" "${wl_model[W1]}" "$work/W1.txt" 8 "$2" 4 "$work/out/$tag.h5"
  say "peak memory: W1, -n $1 threads=$2, batch 8"
  if "$mpirun" -n "$1" --bind-to "${best_bind[$1]}" "$py" bench/memwrap.py "$work/$tag" \
       "$salpipe" --overwrite --quiet "$work/$tag.toml" > "$work/log/$tag.log" 2>&1; then
    record "{\"kind\":\"mem\",\"wl\":\"W1\",\"ranks\":$1,\"threads\":$2,\"batch\":8,\"per_rank\":[$(cat "$work/$tag".[0-9]*.json | paste -sd,)]}"
  else
    fail "memory -n $1" "see $work/log/$tag.log: $(tail -n 3 "$work/log/$tag.log")"
  fi
done

# ResNet-152 at batch = 8 (issue 11: within its weights + 2 GiB per rank): 16 images,
# fc units 540 and 23, vanilla + guided, -n 2 threads=1, so each rank runs one batch
# of 8. bench_counts gives the weights' and the engine workspace's bytes.
if [ "$do152" = 1 ]; then
  tag=R152-mem-n2
  head -n 16 "$work/all.txt" > "$work/R152.txt"
  write_config "$work/$tag.toml" "${wl_model[R152]}" "$work/R152.txt" 8 1 4 "$work/out/$tag.h5" fc
  say "peak memory: ResNet-152, -n 2 threads=1, batch 8"
  if c=$(OPENBLAS_NUM_THREADS=1 "$build/bench/bench_counts" "${wl_model[R152]}" 8 2>&1); then
    record "{\"kind\":\"counts\",\"wl\":\"R152\",\"batch\":8,$(echo "$c" | sed 's/^\(.*\)=\(.*\)$/"\1":\2/' | paste -sd,)}"
  else
    fail "bench_counts R152" "$c"
  fi
  t0=$(now)
  if "$mpirun" -n 2 --bind-to "${best_bind[2]}" "$py" bench/memwrap.py "$work/$tag" \
       "$salpipe" --overwrite --quiet "$work/$tag.toml" > "$work/log/$tag.log" 2>&1; then
    dt=$(awk -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')
    record "{\"kind\":\"mem\",\"wl\":\"R152\",\"ranks\":2,\"threads\":1,\"batch\":8,\"images\":16,\"seconds\":$dt,\"per_rank\":[$(cat "$work/$tag".[0-9]*.json | paste -sd,)]}"
  else
    fail "memory R152" "see $work/log/$tag.log: $(tail -n 3 "$work/log/$tag.log")"
  fi
fi

# ---- rank 0's writing capacity -----------------------------------------------------

# tests/test_output's bench mode: deflate rate per core, and H5Dwrite_chunk of
# compressed chunks into a file with flushes, on a real W1 map (the first one).
if has W1; then
  say "writer capacity (test_output bench)"
  map=$work/map.raw
  out=$(first "$work"/out/W1-n1-t2-*-c4-fast.h5)
  [ -n "$out" ] && "$py" -c "import h5py, sys; h5py.File(sys.argv[1], 'r')['saliency'][0, 0, 0].astype('<f4').tofile(sys.argv[2])" "$out" "$map"
  if s=$("$build/tests/test_output" bench "$work/writer" "$map" 2>&1); then
    echo "$s" > "$work/log/writer.log"
    "$py" bench/bench_report.py writer "$work/log/writer.log" >> "$rec" || fail writer "cannot parse $work/log/writer.log"
  else
    fail writer "$s"
  fi
fi

# ---- report ------------------------------------------------------------------------

record "{\"kind\":\"meta_end\",\"load_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
rm -f "$work"/out/*.h5 "$work/writer/bench.h5"
res=bench/results/latest$suffix
"$py" bench/bench_report.py report "$rec" "$res.json" "$res.txt" ||
  { echo "bench.sh: report failed; raw records in $rec" >&2; exit 1; }
cat "$res.txt"
grep -q '^== measurements that FAILED' "$res.txt" && failed=1
if [ ${#wls[@]} -gt 0 ]; then
  "$py" scripts/bench_plot.py "$res.json" "docs/img/performance$suffix.png" ||
    { echo "bench.sh: plot failed" >&2; failed=1; }
fi
exit $failed
}
