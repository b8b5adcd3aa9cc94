# Graph networks (model format 2, issue 11) on small hand-built files:
#   model_graph_files  tests/make_graph_models.py writes ${SAL_TEST_MODEL_DIR}/graph/
#                      (fixture model_graph: two good graphs and bad_graph_*.h5)
#   model_load_graph   test_model graph DIR: inputs, aliases, shapes; each bad graph
#                      refused with its message
#   graph_engine       test_graph DIR: backward through add and concat against finite
#                      differences in float64, float32 against float64; the backward
#                      stopped at a node (sal_engine_stop_at) against finite differences
# All three take about a second.
set(SAL_TEST_GRAPH_DIR ${CMAKE_CURRENT_BINARY_DIR}/models/graph)

add_test(NAME model_graph_files
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/make_graph_models.py
          ${SAL_TEST_GRAPH_DIR})
set_tests_properties(model_graph_files PROPERTIES FIXTURES_SETUP model_graph LABELS unit)

add_test(NAME model_load_graph COMMAND test_model graph ${SAL_TEST_GRAPH_DIR})
set_tests_properties(model_load_graph PROPERTIES FIXTURES_REQUIRED model_graph LABELS unit)

add_executable(test_graph test_graph.c)
target_link_libraries(test_graph PRIVATE salcore)
add_test(NAME graph_engine COMMAND test_graph ${SAL_TEST_GRAPH_DIR})
# Tiny GEMMs: one BLAS thread keeps parallel ctest runs from oversubscribing.
set_tests_properties(graph_engine PROPERTIES FIXTURES_REQUIRED model_graph LABELS unit
                     ENVIRONMENT OPENBLAS_NUM_THREADS=1)

# Issue 12: the attribution driver (sal_attrib) on the same files: what follows from
# the methods' definitions (test_attrib.c); about a second.
add_executable(test_attrib test_attrib.c)
target_link_libraries(test_attrib PRIVATE salcore)
add_test(NAME attrib_methods COMMAND test_attrib ${SAL_TEST_GRAPH_DIR})
set_tests_properties(attrib_methods PROPERTIES FIXTURES_REQUIRED model_graph LABELS unit
                     ENVIRONMENT OPENBLAS_NUM_THREADS=1)
