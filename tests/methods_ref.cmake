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
         COMMAND ${CMAKE_COMMAND} -E rm -rf ${_mref_dir}/alexnet.h5 ${_mref_dir}/work
                 ${_mref_dir}/cmp_alexnet ${_mref_dir}/cmp_resnet18)
set_tests_properties(methods_ref_export PROPERTIES
  LABELS reference FIXTURES_SETUP methods_ref TIMEOUT 300)
set_tests_properties(methods_ref_selftest PROPERTIES
  LABELS reference FIXTURES_REQUIRED methods_ref TIMEOUT 300)
set_tests_properties(methods_ref_cleanup PROPERTIES
  LABELS reference FIXTURES_CLEANUP methods_ref)

# salpipe's attribution driver against the reference (tests/reference/test_methods.py
# runs tests/attrib_dump and methods_reference.py on the same inputs, SmoothGrad with
# the C generator's noise): float64 to 1e-9, float32 closely. AlexNet from the fixture
# above, ResNet-18 from the reference suite's fixture. ~40 CPU seconds each.
add_executable(attrib_dump ${CMAKE_CURRENT_SOURCE_DIR}/attrib_dump.c)
target_link_libraries(attrib_dump PRIVATE salcore)
add_test(NAME methods_vs_reference_alexnet
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/reference/test_methods.py
                 ${_mref_dir}/alexnet.h5 ${_mref_dir}/cmp_alexnet
                 --image ${SALPIPE_SHARED_DIR}/data/n03223299_27176.JPEG
                 --attrib-dump $<TARGET_FILE:attrib_dump> --noise-dump $<TARGET_FILE:noise_dump>
                 --target conv5_maxpool:7 --target fc3:539 --gradcam-layer conv4_relu)
set_tests_properties(methods_vs_reference_alexnet PROPERTIES
  LABELS reference FIXTURES_REQUIRED methods_ref TIMEOUT 600 PROCESSORS 2
  ENVIRONMENT OPENBLAS_NUM_THREADS=1)
add_test(NAME methods_vs_reference_resnet18
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/reference/test_methods.py
                 ${CMAKE_CURRENT_BINARY_DIR}/reference/resnet18.h5
                 ${_mref_dir}/cmp_resnet18
                 --image ${SALPIPE_SHARED_DIR}/data/n03223299_27176.JPEG
                 --attrib-dump $<TARGET_FILE:attrib_dump> --noise-dump $<TARGET_FILE:noise_dump>
                 --target layer4_basicblock1:10 --target fc:539
                 --gradcam-layer layer4_basicblock0)
set_tests_properties(methods_vs_reference_resnet18 PROPERTIES
  LABELS reference FIXTURES_REQUIRED reference_resnet18 TIMEOUT 900 PROCESSORS 2
  ENVIRONMENT OPENBLAS_NUM_THREADS=1)
