# Output file suite (pipeline/output.h): test_output.c and test_output_crash.c write
# files (helpers in output_check.c), check_output.py reads them with h5py and
# xarray. All label `unit`; files go to the build tree.
foreach(_exe test_output test_output_crash test_output_methods)
  add_executable(${_exe} ${CMAKE_CURRENT_LIST_DIR}/${_exe}.c ${CMAKE_CURRENT_LIST_DIR}/output_check.c)
  target_link_libraries(${_exe} PRIVATE saloutput m)
endforeach()

set(_out_dir ${CMAKE_CURRENT_BINARY_DIR}/output)
set(_out_py ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_output.py)
foreach(_case "test_output;basic" "test_output;sha256" "test_output_crash;kill"
              "test_output_crash;crashpoints")
  list(GET _case 0 _exe)
  list(GET _case 1 _mode)
  add_test(NAME output_${_mode} COMMAND ${_exe} ${_mode} ${_out_dir}/${_mode} ${_out_py})
  # HDF5 keeps library-lifetime allocations that LeakSanitizer would report.
  set_tests_properties(output_${_mode} PROPERTIES LABELS unit
                       ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
endforeach()

# /gradcam and /integrated_gradients_gap (issue 12): ~0.2 s.
add_test(NAME output_methods COMMAND test_output_methods ${_out_dir}/methods)
set_tests_properties(output_methods PROPERTIES LABELS unit ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
