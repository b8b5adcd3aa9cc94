#!/usr/bin/env bash
# One core, one image: salpipe's core against PyTorch for one AlexNet forward pass plus
# 4 backward passes (fc3 540 and 23, vanilla and guided), seeded random weights.
#   scripts/bench_core.sh [ARCH] [BATCH] [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-alexnet} batch=${2:-1} reps=${3:-7}
py=/usr/bin/python3
model=build/bench/$arch.h5
[ -f "$model" ] || $py scripts/export_torchvision.py "$arch" -o "$model" --seed 0
OPENBLAS_NUM_THREADS=1 build/bench/bench_core "$model" "$batch" "$reps" f32
OMP_NUM_THREADS=1 $py bench/bench_core_torch.py "$arch" "$batch" "$reps" 1
