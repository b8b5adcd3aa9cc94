#!/usr/bin/env bash
# Installs every Debian package salpipe's build and tests need, then configures and
# builds into build/. Idempotent: quick when everything is already there.
#   scripts/setup.sh            install (if needed) + build
#   SALPIPE_SKIP_BUILD=1 ...    install only
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libopenblas-dev
  libjpeg62-turbo-dev libpng-dev
  libtomlplusplus-dev
  python3 python3-torch python3-torchvision python3-pil python3-h5py python3-numpy
  python3-xarray python3-h5netcdf python3-matplotlib
  python3-mpmath
  dataset-fashion-mnist
  slurmctld slurmd slurm-client munge
  time
  clang-14 libclang-rt-14-dev   # libFuzzer: scripts/fuzz.sh, the fuzz smoke runs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -q
  $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ "${SALPIPE_SKIP_BUILD:-0}" != 1 ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE=/usr/bin/python3 >/dev/null
  cmake --build build -j "$(nproc)"
fi
