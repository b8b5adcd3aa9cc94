#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/, clang-14, ASan + UBSan) into
# build-fuzz/ and runs each for SECONDS (default 60), one after another, at low
# priority. Prints per harness: executions, coverage (cov = edges, ft = features),
# corpus size, the execution at which coverage last grew (a plateau when it is far
# below the executions), and findings (crash-, leak-, timeout-, oom- files, kept in
# build-fuzz/fuzz_findings/HARNESS/; an input running over 25 s is a timeout finding,
# one over 10 s that finishes is listed as slow). Exits 1 when anything was found.
#   scripts/fuzz.sh                 60 s each, every harness
#   scripts/fuzz.sh 600 model       10 minutes of the model harness
# The growing corpus is build-fuzz/fuzz_long/HARNESS (kept between runs); a finding
# becomes a regression input in tests/fuzz/regressions/HARNESS/ (see
# docs/reliability.md, "Fuzzing every parser").
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(config sources image model messages)

command -v clang-14 >/dev/null || { echo "fuzz: clang-14 is missing: run scripts/setup.sh" >&2; exit 2; }
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSALPIPE_FUZZ=ON \
  -DPython3_EXECUTABLE=/usr/bin/python3 >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzz_all >/dev/null

found=0
printf '%-9s %8s %12s %8s %8s %8s %12s %9s\n' harness seconds executions cov ft corpus last_new_at findings
for h in "${harnesses[@]}"; do
  bin=build-fuzz/tests/fuzz_$h
  [ -x "$bin" ] || { echo "fuzz: no harness '$h'" >&2; exit 2; }
  corpus=build-fuzz/fuzz_long/$h findings=build-fuzz/fuzz_findings/$h
  mkdir -p "$corpus" "$findings"
  dict=()
  [ -f "tests/fuzz/$h.dict" ] && dict=(-dict="tests/fuzz/$h.dict")
  # The model harness runs tens of inputs a second, too few for libFuzzer's slowly
  # growing length limit: allow 128 operations from the start.
  [ "$h" = model ] && dict+=(-max_len=512 -len_control=0)
  log=build-fuzz/fuzz_findings/$h.log
  # -error_exitcode: keep going is not wanted; stop at the first finding and say so.
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    nice -n 10 "$bin" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$findings/" "${dict[@]}" \
      "$corpus" "tests/fuzz/corpus/$h" >"$log" 2>&1 || true
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  last=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' | tail -1)
  cov=$(echo "$last" | awk '{print $2}') ft=$(echo "$last" | awk '{print $4}')
  corp=$(echo "$last" | awk '{print $6}')
  # the execution at which coverage last grew: far below `executions` = plateau
  lastnew=$(grep -E '^#[0-9]+[[:space:]]+NEW' "$log" | tail -1 | grep -o '^#[0-9]*' | tr -d '#')
  n=$(find "$findings" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o \
        -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  # an input over 10 s that still finished: reported, not a finding (see the log)
  slow=$(find "$findings" -maxdepth 1 -type f -name 'slow-unit-*' | wc -l)
  printf '%-9s %8s %12s %8s %8s %8s %12s %9s\n' "$h" "$seconds" "${execs:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}" "${lastnew:--}" "$n"
  [ "$slow" -eq 0 ] || echo "  $slow slow input(s) (over 10 s, finished) in $findings/"
  if [ "$n" -gt 0 ]; then
    found=1
    echo "  see $log and $findings/"
  fi
done
exit $found
