# Issue 12's building blocks (core/attrib.h): noise, quadrature, bilinear upsampling.
# All `unit`, seconds each:
#   noise                 Philox known answers, split invariance, statistics (~0.5 s)
#   noise_mutant_*        the statistics fail on a broken generator (WILL pass only
#                         when they do): Box-Muller with pi for 2 pi; a counter that
#                         ignores the sample (~0.5 s each)
#   noise_python          C == independent numpy/math generator bit for bit (~5 s)
#   quadrature            rules' weights, symmetry, exactness on polynomials (<1 s)
#   quadrature_python     nodes/weights against numpy's leggauss and Captum's
#                         riemann_trapezoid written out (~3 s)
#   upsample              identity, constants, C-only checks (<1 s)
#   upsample_torch        against torch.nn.functional.interpolate, both precisions (~5 s)
add_executable(test_noise ${CMAKE_CURRENT_LIST_DIR}/test_noise.c)
target_link_libraries(test_noise PRIVATE salcore)
add_test(NAME noise COMMAND test_noise)
set_tests_properties(noise PROPERTIES LABELS unit TIMEOUT 60)

add_executable(noise_dump ${CMAKE_CURRENT_LIST_DIR}/leaf/noise_dump.c)
target_link_libraries(noise_dump PRIVATE salcore)
add_test(NAME noise_python
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/leaf/noise_ref.py
          $<TARGET_FILE:noise_dump> ${CMAKE_CURRENT_BINARY_DIR}/leaf_noise)
set_tests_properties(noise_python PROPERTIES LABELS unit TIMEOUT 120)

# Mutants: core/noise.c with one text replaced (configuring fails when the text is
# not there exactly once), compiled into test_noise alone.
function(leaf_noise_mutant name from to)
  set(_path ${PROJECT_SOURCE_DIR}/core/noise.c)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_path})
  file(READ ${_path} _src)
  string(FIND "${_src}" "${from}" _first)
  string(FIND "${_src}" "${from}" _last REVERSE)
  if(_first EQUAL -1 OR NOT _first EQUAL _last)
    message(FATAL_ERROR "noise mutant ${name}: '${from}' is not in core/noise.c "
                        "exactly once; update tests/leaf.cmake")
  endif()
  string(REPLACE "${from}" "${to}" _src "${_src}")
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/leaf_mutants/${name}/noise.c "${_src}")
  add_executable(test_noise_${name} ${CMAKE_CURRENT_LIST_DIR}/test_noise.c
                 ${CMAKE_CURRENT_BINARY_DIR}/leaf_mutants/${name}/noise.c)
  target_include_directories(test_noise_${name} PRIVATE ${PROJECT_SOURCE_DIR}/core)
  target_link_libraries(test_noise_${name} PRIVATE m)
  add_test(NAME noise_mutant_${name} COMMAND test_noise_${name} --expect-fail)
  set_tests_properties(noise_mutant_${name} PROPERTIES LABELS unit TIMEOUT 60)
endfunction()
leaf_noise_mutant(half_angle "theta = TWO_PI * u2;" "theta = (TWO_PI / 2) * u2;")
leaf_noise_mutant(no_sample "p >> 32), sample, image}" "p >> 32), 0 * sample, image}")

foreach(t quadrature upsample)
  add_executable(test_${t} ${CMAKE_CURRENT_LIST_DIR}/test_${t}.c)
  target_link_libraries(test_${t} PRIVATE salcore)
  add_test(NAME ${t} COMMAND test_${t})
  set_tests_properties(${t} PROPERTIES LABELS unit TIMEOUT 60)
endforeach()
add_test(NAME quadrature_python
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/leaf/check_quadrature.py
          $<TARGET_FILE:test_quadrature>)
set_tests_properties(quadrature_python PROPERTIES LABELS unit TIMEOUT 120)
add_test(NAME upsample_torch
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/leaf/check_upsample.py
          $<TARGET_FILE:test_upsample> ${CMAKE_CURRENT_BINARY_DIR}/leaf_upsample)
set_tests_properties(upsample_torch PROPERTIES LABELS unit TIMEOUT 120)
