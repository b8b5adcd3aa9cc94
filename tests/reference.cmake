# Reference suite (label `reference`): salpipe against PyTorch on seeded torchvision
# networks. Per architecture, two fixture steps export the model
# (scripts/export_torchvision.py) and compute PyTorch's layer outputs and maps
# (tests/reference/make_reference.py); test_reference then compares, float64 and
# float32. The files (up to ~1 GB for VGG) live in the build tree and are removed by
# the fixture's cleanup step.
if(NOT DEFINED SALPIPE_SHARED_DIR)
  set(SALPIPE_SHARED_DIR "${CMAKE_SOURCE_DIR}/../shared" CACHE PATH
      "The shared directory holding data/n03223299_27176.JPEG")
endif()

add_executable(test_reference ${CMAKE_CURRENT_SOURCE_DIR}/test_reference.c)
target_link_libraries(test_reference PRIVATE salcore)

set(_ref_dir ${CMAKE_CURRENT_BINARY_DIR}/reference)
file(MAKE_DIRECTORY ${_ref_dir})
set(_ref_photo ${SALPIPE_SHARED_DIR}/data/n03223299_27176.JPEG)

# make_reference.py options per arch. VGG's layer outputs are ~130 MB per image in
# float64, so only the first two inputs (photo, noise) keep them; maps cover all four.
set(_ref_opts_alexnet "")
set(_ref_opts_vgg11 --layer-inputs 2)
set(_ref_opts_vgg11_bn --layer-inputs 2)

foreach(_arch alexnet vgg11 vgg11_bn)
  set(_opts ${_ref_opts_${_arch}})
  set(_model ${_ref_dir}/${_arch}.h5)
  set(_ref ${_ref_dir}/${_arch}_reference.h5)

  add_test(NAME reference_${_arch}_export
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/scripts/export_torchvision.py
                   ${_arch} -o ${_model} --seed 0)
  add_test(NAME reference_${_arch}_torch
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/reference/make_reference.py
                   ${_arch} ${_ref} --image ${_ref_photo} --seed 0 ${_opts})
  add_test(NAME reference_${_arch}
           COMMAND test_reference ${_model} ${_ref})
  add_test(NAME reference_${_arch}_cleanup
           COMMAND ${CMAKE_COMMAND} -E rm -f ${_model} ${_ref})

  set_tests_properties(reference_${_arch}_export PROPERTIES
    LABELS reference FIXTURES_SETUP reference_${_arch} TIMEOUT 300)
  # PROCESSORS 2: both use the machine's two cores; ctest -j2 then runs them alone.
  set_tests_properties(reference_${_arch}_torch PROPERTIES
    LABELS reference FIXTURES_SETUP reference_${_arch} TIMEOUT 600 PROCESSORS 2)
  set_tests_properties(reference_${_arch} PROPERTIES
    LABELS reference FIXTURES_REQUIRED reference_${_arch} TIMEOUT 900 PROCESSORS 2)
  set_tests_properties(reference_${_arch}_cleanup PROPERTIES
    LABELS reference FIXTURES_CLEANUP reference_${_arch})
endforeach()
