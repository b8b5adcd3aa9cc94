# Issue 12's building blocks (core/attrib.h): noise, quadrature, bilinear upsampling.
# All `unit`, seconds each:
#   noise                 Philox known answers, split invariance, statistics (~0.5 s)
#   noise_mutant_*        the statistics fail on a broken generator (WILL pass only
#                         when they do): Box-Muller with pi for 2 pi; a counter that
#                         ignores the sample; sigma sqrt(1.1); sin's x^3 term or its
#                         quarter-turn sign wrong (~0.5 s each)
#   noise_python          C == independent numpy generator bit for bit, for each of
#                         noise.c's paths; log/sin/cos ulp errors (~6 s)
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
# noise.c's narrower paths (SAL_NOISE_ISA: 2 AVX2, 1 SSE2, 0 portable C) in noise_dump
# of their own; the default one above takes AVX-512 where the CPU has it. Each must
# give the Python reference's bits.
set(_noise_dumps $<TARGET_FILE:noise_dump>)
foreach(isa 2 1 0)
  add_executable(noise_dump_isa${isa} ${CMAKE_CURRENT_LIST_DIR}/leaf/noise_dump.c
                 ${PROJECT_SOURCE_DIR}/core/noise.c)
  target_include_directories(noise_dump_isa${isa} PRIVATE ${PROJECT_SOURCE_DIR}/core)
  target_compile_definitions(noise_dump_isa${isa} PRIVATE SAL_NOISE_ISA=${isa})
  target_compile_options(noise_dump_isa${isa} PRIVATE -ffp-contract=off -fno-math-errno)
  target_link_libraries(noise_dump_isa${isa} PRIVATE m)
  list(APPEND _noise_dumps $<TARGET_FILE:noise_dump_isa${isa}>)
endforeach()
add_test(NAME noise_python
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/leaf/noise_ref.py
          ${CMAKE_CURRENT_BINARY_DIR}/leaf_noise ${_noise_dumps})
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
  target_compile_options(test_noise_${name} PRIVATE -ffp-contract=off -fno-math-errno)
  target_link_libraries(test_noise_${name} PRIVATE m)
  add_test(NAME noise_mutant_${name} COMMAND test_noise_${name} --expect-fail)
  set_tests_properties(noise_mutant_${name} PROPERTIES LABELS unit TIMEOUT 60)
endfunction()
# half the angle; the sample left out of the counter; sigma sqrt(1.1); sin's cubic
# term with the wrong sign; sin's sign taken from the wrong quarter turns
leaf_noise_mutant(half_angle "const double t = 4.0 * u," "const double t = 2.0 * u,")
leaf_noise_mutant(no_sample "s = set1(in->sample)" "s = set1(0 * in->sample)")
leaf_noise_mutant(wrong_sigma "sqrt(-2.0 * log_u1(u1))" "sqrt(-2.2 * log_u1(u1))")
leaf_noise_mutant(sin_cubic "-1.0 / 6 + x2" "1.0 / 6 + x2")
leaf_noise_mutant(sin_quarter "sb ^ (q & 2) << 62" "sb ^ (q & 1) << 63")

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
