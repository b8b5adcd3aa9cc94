# Self-test of the methods reference (issue 12, label `reference`):
# tests/reference/methods_selftest.py checks tests/reference/methods_reference.py
# against its definitions and independent computations (docs/reliability.md,
# "Methods reference") on a seeded AlexNet, exported by the fixture step, and on small
# seeded networks it exports itself. Cost: export ~4 s, self-test ~15 CPU seconds
# (one thread); files (~250 MB) are removed by the cleanup step.
if(NOT DEFINED SALPIPE_SHARED_DIR)
  set(SALPIPE_SHARED_DIR "${CMAKE_SOURCE_DIR}/../shared" CACHE PATH
      "The shared directory holding data/n03223299_27176.JPEG")
endif()
set(_mref_dir ${CMAKE_CURRENT_BINARY_DIR}/methods_ref)
file(MAKE_DIRECTORY ${_mref_dir})

add_test(NAME methods_ref_export
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/scripts/export_torchvision.py
                 alexnet -o ${_mref_dir}/alexnet.h5 --seed 0)
add_test(NAME methods_ref_selftest
         COMMAND ${Python3_EXECUTABLE}
                 ${CMAKE_CURRENT_SOURCE_DIR}/reference/methods_selftest.py
                 ${_mref_dir}/alexnet.h5 ${_mref_dir}/work
                 --image ${SALPIPE_SHARED_DIR}/data/n03223299_27176.JPEG)
add_test(NAME methods_ref_cleanup
         COMMAND ${CMAKE_COMMAND} -E rm -rf ${_mref_dir}/alexnet.h5 ${_mref_dir}/work)
set_tests_properties(methods_ref_export PROPERTIES
  LABELS reference FIXTURES_SETUP methods_ref TIMEOUT 300)
set_tests_properties(methods_ref_selftest PROPERTIES
  LABELS reference FIXTURES_REQUIRED methods_ref TIMEOUT 300)
set_tests_properties(methods_ref_cleanup PROPERTIES
  LABELS reference FIXTURES_CLEANUP methods_ref)
