#!/usr/bin/env bash
# The long run of docs/reliability.md at full size: the demo model over N images
# (default 20000, 600,000 maps, ~5 minutes on 2 cores) on 2 ranks, with the
# resident memory of every rank sampled over time (tests/pipeline/test_longrun.py;
# the CTest test pipeline_longrun runs 4000).
#   scripts/longrun.sh [IMAGES] [RANKS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SALPIPE_BUILD:-build}
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
exec nice -n 10 /usr/bin/python3 tests/pipeline/test_longrun.py \
  --images "${1:-20000}" --ranks "${2:-2}" --interval 1 \
  --salpipe "$build/pipeline/salpipe" --mpiexec mpiexec \
  --demo-model models/fashion_mnist_cnn.h5 --demo-images data/demo \
  --work "$build/longrun"
