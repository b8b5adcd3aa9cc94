# Winograd input gradient (core/winograd.c, issue 13): matrices, random layers
# against double, thread-order independence. About 0.2 s. `test_winograd --bench
# MODEL.h5` times it against the direct path (docs/performance.md, "Winograd").
add_executable(test_winograd ${CMAKE_CURRENT_LIST_DIR}/test_winograd.c)
target_link_libraries(test_winograd PRIVATE salcore m)
add_test(NAME winograd COMMAND test_winograd)
set_tests_properties(winograd PROPERTIES LABELS unit ENVIRONMENT OPENBLAS_NUM_THREADS=1)
