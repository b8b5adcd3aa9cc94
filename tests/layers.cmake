# Layer kernel unit tests (test_layers.c and, for the graph networks' kernels,
# test_layers_graph.c, and for the fast paths test_layers_fast.c; helpers in
# layer_check.c), compiled once
# per precision like the core's compute files; each build checks its own kernels.
foreach(prec f32 f64)
  add_executable(test_layers_${prec} ${CMAKE_CURRENT_LIST_DIR}/test_layers.c
                 ${CMAKE_CURRENT_LIST_DIR}/test_layers_graph.c
                 ${CMAKE_CURRENT_LIST_DIR}/test_layers_fast.c
                 ${CMAKE_CURRENT_LIST_DIR}/layer_check.c)
  target_link_libraries(test_layers_${prec} PRIVATE salcore)
  add_test(NAME layers_${prec} COMMAND test_layers_${prec})
  # Tiny GEMMs: one BLAS thread keeps parallel ctest runs from oversubscribing.
  set_tests_properties(layers_${prec} PROPERTIES LABELS unit
                       ENVIRONMENT OPENBLAS_NUM_THREADS=1)
endforeach()
target_compile_definitions(test_layers_f32 PRIVATE SAL_DOUBLE=0)
target_compile_definitions(test_layers_f64 PRIVATE SAL_DOUBLE=1)
