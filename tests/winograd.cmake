# Winograd input gradient (core/winograd.c, issue 13): matrices, random layers
# against double, thread-order independence. About 0.2 s. `test_winograd --bench
# MODEL.h5` times it against the direct path (docs/performance.md, "Winograd").
add_executable(test_winograd ${CMAKE_CURRENT_LIST_DIR}/test_winograd.c)
target_link_libraries(test_winograd PRIVATE salcore m)
add_test(NAME winograd COMMAND test_winograd)
set_tests_properties(winograd PROPERTIES LABELS unit ENVIRONMENT OPENBLAS_NUM_THREADS=1)

# The Winograd weights in a caller's block (what salpipe shares per node): filled in
# 2, 3 and 7 parts it is the whole block, and engines borrowing it give the same maps
# (test_wino_shared.c). About 4 s of CPU, ~1 min under ASan.
add_executable(test_wino_shared ${CMAKE_CURRENT_LIST_DIR}/test_wino_shared.c)
target_link_libraries(test_wino_shared PRIVATE salcore m)
add_test(NAME wino_shared COMMAND test_wino_shared ${SAL_TEST_MODEL_DIR}/alexnet_seed0.h5
         ${SAL_TEST_MODEL_DIR}/vgg11_bn_seed0.h5)
set_tests_properties(wino_shared PROPERTIES LABELS unit
                     FIXTURES_REQUIRED "model_alexnet;model_vgg11_bn"
                     ENVIRONMENT OPENBLAS_NUM_THREADS=1)
