# Config checker unit tests (test_config.c): one CTest per case, each writing its
# config and fixture files into its own directory under the build tree.
add_executable(test_config ${CMAKE_CURRENT_LIST_DIR}/test_config.c)
target_link_libraries(test_config PRIVATE salconfig)

set(SAL_CONFIG_CASES
  syntax_error unknown_key unknown_section wrong_type missing_model missing_output
  no_targets unit_zero bad_range empty_files empty_list dir_no_match two_sources
  no_source missing_source_file bad_values duplicate_target stim_csv_errors
  defaults full targets_forms source_files source_list source_dir source_stim_csv
  relative_paths method_params_defaults method_params_values method_params_errors)
foreach(case ${SAL_CONFIG_CASES})
  add_test(NAME config_${case}
    COMMAND test_config ${CMAKE_CURRENT_BINARY_DIR}/config_cases ${case})
  set_tests_properties(config_${case} PROPERTIES LABELS unit)
endforeach()

# The plan and the batch message with issue 12's method parameters (test_plan.c):
# plans built against the tiny model, their bytes, the output's parameter
# attributes and resume check, a batch message round trip. Well under a second each.
add_executable(test_plan ${CMAKE_CURRENT_LIST_DIR}/test_plan.c
               ${PROJECT_SOURCE_DIR}/pipeline/plan.c ${PROJECT_SOURCE_DIR}/pipeline/batch.c)
target_link_libraries(test_plan PRIVATE salconfig saloutput salcore m)
foreach(case gradcam_layer method_checks method_text pack_roundtrip unpack_refuses
             output_params batch_roundtrip batch_methods)
  add_test(NAME plan_${case}
    COMMAND test_plan ${CMAKE_CURRENT_BINARY_DIR}/plan_cases ${SAL_TEST_MODEL_DIR}/tiny/good.h5
            ${case})
  # HDF5 keeps library-lifetime allocations that LeakSanitizer would report.
  set_tests_properties(plan_${case} PROPERTIES LABELS unit FIXTURES_REQUIRED model_tiny
                       ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
endforeach()
