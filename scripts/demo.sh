#!/usr/bin/env bash
# The demo in one command: sets up if needed (quick the second time), runs salpipe on
# two MPI ranks over the shipped Fashion-MNIST test images, and says what it wrote.
#   scripts/demo.sh
# The test suite runs it with SALPIPE_BUILD=<its build dir> SALPIPE_NO_SETUP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "${SALPIPE_NO_SETUP:-0}" = 1 ] || scripts/setup.sh
salpipe=${SALPIPE_BUILD:-build}/pipeline/salpipe

# Open MPI refuses to run as root unless told; a demo in a container is often root.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
ranks=2
extra=()
[ "$(nproc)" -ge "$ranks" ] || extra=(--oversubscribe)

echo "== salpipe --check configs/demo.toml"
"$salpipe" --check configs/demo.toml
echo
echo "== mpirun -n $ranks $salpipe --overwrite configs/demo.toml"
mpirun -n "$ranks" "${extra[@]}" "$salpipe" --overwrite configs/demo.toml

out=out/demo
/usr/bin/python3 - "$out/saliency.h5" <<'PY'
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1], "r") as f:
    s = f["saliency"]
    status = f["status"][:]
    print(f"\n{sys.argv[1]}: /saliency {s.shape} {s.dtype} "
          "[image, target, method, channel, y, x]")
    print(f"  {int((status == 1).sum())} of {len(status)} images done, "
          f"targets {', '.join(t.decode() for t in f['target'][:3])}, ..., "
          f"methods {', '.join(m.decode() for m in f['method'][:])}")
    classes = ["tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
               "sneaker", "bag", "ankle_boot"]
    # file names are t10k-INDEX_CLASS.png; /activation holds the 10 class scores
    truth = [classes.index(p.decode().rsplit("/", 1)[-1].split("_", 1)[1][:-4])
             for p in f["image"][:]]
    right = int((np.argmax(f["activation"][:], axis=1) == np.array(truth)).sum())
    print(f"  the demo model's top class is right for {right} of {len(truth)} images")
PY
echo
echo "Previews:  $out/previews/  (one *_montage.jpg per image: the input, then a row per"
echo "           class unit with vanilla, guided and deconvnet maps)"
echo "Figure:    /usr/bin/python3 scripts/salview.py $out/saliency.h5 --targets fc2:1 fc2:10 -o $out/figure.png"
echo "Python:    h5py.File('$out/saliency.h5')['saliency'][image, target, method]"
echo "Next:      README.md, 'Your own network' (export torchvision weights, write a config)"
