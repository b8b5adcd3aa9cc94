# One-hot rows (core/onehot.c, issue 13 lever 2): maps with the shortcut against the
# full product, on the graph networks and the seeded AlexNet (test_onehot.c). About 8 s.
add_executable(test_onehot ${CMAKE_CURRENT_LIST_DIR}/test_onehot.c)
target_link_libraries(test_onehot PRIVATE salcore m)
add_test(NAME onehot_engine COMMAND test_onehot ${SAL_TEST_GRAPH_DIR}
         ${SAL_TEST_MODEL_DIR}/alexnet_seed0.h5)
set_tests_properties(onehot_engine PROPERTIES LABELS unit
                     FIXTURES_REQUIRED "model_graph;model_alexnet"
                     ENVIRONMENT OPENBLAS_NUM_THREADS=1)
