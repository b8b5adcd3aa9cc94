#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the release build's whole
# suite, then the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer,
# then a short libFuzzer run of every parser's harness (SALPIPE_SKIP_FUZZ=1 skips it).
#   scripts/test.sh               everything
#   scripts/test.sh -L reference  extra arguments go to the release build's ctest
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/setup.sh

status=0
echo "== release build: ctest $*"
(cd build && ctest --output-on-failure -j "$jobs" "$@") || status=1

if [ "${SALPIPE_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== sanitizer build (ASan + UBSan): unit tests"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSALPIPE_SANITIZE=ON \
        -DPython3_EXECUTABLE=/usr/bin/python3 >/dev/null
  cmake --build build-asan -j "$jobs"
  # LeakSanitizer: OpenBLAS's thread pool and HDF5's globals live until exit.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j "$jobs" -L unit) || status=1
fi

if [ "${SALPIPE_SKIP_FUZZ:-0}" != 1 ]; then
  # libFuzzer needs clang: a build of its own (build-fuzz/, ASan + UBSan + coverage),
  # then ~12 s of fuzzing per harness from the committed corpora (tests/fuzz.cmake).
  echo "== fuzz build (libFuzzer, clang-14): smoke run of every harness"
  CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug \
        -DSALPIPE_FUZZ=ON -DPython3_EXECUTABLE=/usr/bin/python3 >/dev/null
  cmake --build build-fuzz -j "$jobs" --target fuzz_all >/dev/null
  (cd build-fuzz && ctest --output-on-failure -j "$jobs" -L fuzz) || status=1
fi
exit $status
