# Smoke test of bench/bench_writers.c (issue 14's writer benchmark): 4 processes,
# 2 writers, every map read back from the part files and compared byte for byte
# with what its producer sent; and the same run with one byte corrupted on its way
# into a writer (--flip-byte), which must fail. A second or two; never timed.
set(_bw_work ${CMAKE_CURRENT_BINARY_DIR}/bench_writers_work)
file(MAKE_DIRECTORY ${_bw_work}/ok ${_bw_work}/break)
set(_bw_env "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
add_test(NAME bench_writers_smoke
  COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 4 --oversubscribe
          $<TARGET_FILE:bench_writers> --writers 2 --batches 3 --batch 2 --pool 5
          --dir ${_bw_work}/ok --verify)
add_test(NAME bench_writers_smoke_break
  COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 4 --oversubscribe
          $<TARGET_FILE:bench_writers> --writers 2 --batches 2 --batch 2 --pool 3
          --dir ${_bw_work}/break --verify --flip-byte)
set_tests_properties(bench_writers_smoke bench_writers_smoke_break PROPERTIES
  LABELS mpi TIMEOUT 120 PROCESSORS 2 ENVIRONMENT "${_bw_env}")
# The break must be caught by the read-back, not fail some other way.
set_tests_properties(bench_writers_smoke_break PROPERTIES
  PASS_REGULAR_EXPRESSION "VERIFY FAILED" FAIL_REGULAR_EXPRESSION "verified byte for byte")
