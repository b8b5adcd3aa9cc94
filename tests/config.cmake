# Config checker unit tests (test_config.c): one CTest per case, each writing its
# config and fixture files into its own directory under the build tree.
add_executable(test_config ${CMAKE_CURRENT_LIST_DIR}/test_config.c)
target_link_libraries(test_config PRIVATE salconfig)

set(SAL_CONFIG_CASES
  syntax_error unknown_key unknown_section wrong_type missing_model missing_output
  no_targets unit_zero bad_range empty_files empty_list dir_no_match two_sources
  no_source missing_source_file bad_values duplicate_target stim_csv_errors
  defaults full targets_forms source_files source_list source_dir source_stim_csv
  relative_paths)
foreach(case ${SAL_CONFIG_CASES})
  add_test(NAME config_${case}
    COMMAND test_config ${CMAKE_CURRENT_BINARY_DIR}/config_cases ${case})
  set_tests_properties(config_${case} PROPERTIES LABELS unit)
endforeach()
