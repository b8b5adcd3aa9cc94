# The demo end to end, as a newcomer runs it: scripts/demo.sh (with this build's
# salpipe), then its output, previews and a salview figure checked.
add_test(NAME demo_run
         COMMAND env SALPIPE_NO_SETUP=1 SALPIPE_BUILD=${CMAKE_BINARY_DIR}
                 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
                 ${CMAKE_SOURCE_DIR}/scripts/demo.sh)
set_tests_properties(demo_run PROPERTIES LABELS mpi FIXTURES_SETUP demo_output
                     RESOURCE_LOCK demo_out TIMEOUT 300)
add_test(NAME demo_check
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/demo/check_demo.py
                 ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/demo_figure.png)
set_tests_properties(demo_check PROPERTIES LABELS mpi FIXTURES_REQUIRED demo_output
                     RESOURCE_LOCK demo_out TIMEOUT 300)
add_test(NAME previews_gray
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/demo/check_gray_previews.py
                 $<TARGET_FILE:salpipe> ${CMAKE_SOURCE_DIR}
                 ${CMAKE_CURRENT_BINARY_DIR}/previews_gray)
set_tests_properties(previews_gray PROPERTIES LABELS unit TIMEOUT 120)
