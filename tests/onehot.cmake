# One-hot rows (core/onehot.c, issue 13 lever 2): maps with the shortcut against the
# full product, on the graph networks and the seeded AlexNet (test_onehot.c). About 8 s.
add_executable(test_onehot ${CMAKE_CURRENT_LIST_DIR}/test_onehot.c)
target_link_libraries(test_onehot PRIVATE salcore m)
add_test(NAME onehot_engine COMMAND test_onehot ${SAL_TEST_GRAPH_DIR}
         ${SAL_TEST_MODEL_DIR}/alexnet_seed0.h5)
set_tests_properties(onehot_engine PROPERTIES LABELS unit
                     FIXTURES_REQUIRED "model_graph;model_alexnet"
                     ENVIRONMENT OPENBLAS_NUM_THREADS=1)

# Lever 4: the per-sample loops on the rank's threads give the serial run's bits
# (test_net_par.c), AlexNet and VGG11-BN, both precisions. About 15 s.
add_executable(test_net_par ${CMAKE_CURRENT_LIST_DIR}/test_net_par.c
               ${PROJECT_SOURCE_DIR}/pipeline/team.c)
target_include_directories(test_net_par PRIVATE ${PROJECT_SOURCE_DIR}/pipeline)
target_link_libraries(test_net_par PRIVATE salcore Threads::Threads)
add_test(NAME net_parallel COMMAND test_net_par ${SAL_TEST_MODEL_DIR}/alexnet_seed0.h5
         ${SAL_TEST_MODEL_DIR}/vgg11_bn_seed0.h5)
set_tests_properties(net_parallel PROPERTIES LABELS unit
                     FIXTURES_REQUIRED "model_alexnet;model_vgg11_bn"
                     ENVIRONMENT OPENBLAS_NUM_THREADS=1)
