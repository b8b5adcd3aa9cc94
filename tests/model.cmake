# Model file format: loader (test_model.c), exporter (test_export.py), bad files.
#
# Fixtures, usable by other suites too:
#   model_tiny      ${SAL_TEST_MODEL_DIR}/tiny/   good.h5, good_matlab.h5, bad_*.h5
#   model_alexnet   ${SAL_TEST_MODEL_DIR}/alexnet_seed0.h5   (export --seed 0)
#   model_vgg11_bn  ${SAL_TEST_MODEL_DIR}/vgg11_bn_seed0.h5  (export --seed 0)
set(SAL_TEST_MODEL_DIR ${CMAKE_CURRENT_BINARY_DIR}/models)
file(MAKE_DIRECTORY ${SAL_TEST_MODEL_DIR})

add_executable(test_model test_model.c)
target_link_libraries(test_model PRIVATE salcore)

add_test(NAME model_make_files
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/make_bad_models.py
          ${SAL_TEST_MODEL_DIR}/tiny)
set_tests_properties(model_make_files PROPERTIES FIXTURES_SETUP model_tiny LABELS unit)

add_test(NAME model_load_tiny COMMAND test_model tiny ${SAL_TEST_MODEL_DIR}/tiny)
set_tests_properties(model_load_tiny PROPERTIES FIXTURES_REQUIRED model_tiny LABELS unit)

foreach(arch alexnet vgg11_bn)
  add_test(NAME model_export_${arch}
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/export_torchvision.py
            ${arch} -o ${SAL_TEST_MODEL_DIR}/${arch}_seed0.h5 --seed 0)
  set_tests_properties(model_export_${arch} PROPERTIES
    FIXTURES_SETUP model_${arch} LABELS unit)
  add_test(NAME model_load_${arch}
    COMMAND test_model ${arch} ${SAL_TEST_MODEL_DIR}/${arch}_seed0.h5)
  set_tests_properties(model_load_${arch} PROPERTIES
    FIXTURES_REQUIRED model_${arch} LABELS unit)
endforeach()

add_test(NAME model_export_check
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/test_export.py
          ${SAL_TEST_MODEL_DIR})
set_tests_properties(model_export_check PROPERTIES
  FIXTURES_REQUIRED "model_alexnet;model_vgg11_bn" LABELS unit)

# Graph networks (format 2): a custom network, refusals, resnet18/50, googlenet and
# inception_v3 traced, written and evaluated in float64, and loaded by
# `salpipe --layers` (test_export.py --graph).
# About 20 s of CPU; up to a minute on a busy machine.
add_test(NAME model_export_graph
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/test_export.py --graph
          ${SAL_TEST_MODEL_DIR}/export_graph $<TARGET_FILE:salpipe>)
set_tests_properties(model_export_graph PROPERTIES LABELS unit TIMEOUT 300)
