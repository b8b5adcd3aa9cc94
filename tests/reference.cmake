# Reference suite (label `reference`): salpipe against PyTorch on seeded torchvision
# networks. Per architecture, two fixture steps export the model
# (scripts/export_torchvision.py) and compute PyTorch's layer outputs and maps
# (tests/reference/make_reference.py); test_reference then compares, float64 and
# float32. The files (up to ~1 GB for VGG, 670 MB for ResNet-152) live in the build
# tree and are removed by the fixture's cleanup step.
# Cost of the graph networks, CPU seconds (PyTorch reference + test_reference) measured
# on the 2-core VM under load: resnet18 45 + 28, googlenet 55 + 31, resnet50 86 + 32,
# inception_v3 ~130 + 54, resnet152 129 + 52 (peak RSS 2.5 GB in PyTorch, 1.4 GB in
# the test); about 11 CPU minutes together.
if(NOT DEFINED SALPIPE_SHARED_DIR)
  set(SALPIPE_SHARED_DIR "${CMAKE_SOURCE_DIR}/../shared" CACHE PATH
      "The shared directory holding data/n03223299_27176.JPEG")
endif()

add_executable(test_reference ${CMAKE_CURRENT_SOURCE_DIR}/test_reference.c
               ${CMAKE_CURRENT_SOURCE_DIR}/reference_file.c)
target_link_libraries(test_reference PRIVATE salcore)

set(_ref_dir ${CMAKE_CURRENT_BINARY_DIR}/reference)
file(MAKE_DIRECTORY ${_ref_dir})
set(_ref_photo ${SALPIPE_SHARED_DIR}/data/n03223299_27176.JPEG)

# make_reference.py options per arch. VGG's layer outputs are ~130 MB per image in
# float64, so only the first two inputs (photo, noise) keep them; maps cover all four.
# Graph networks (issue 11) keep CI time modest: fewer inputs, and node outputs of the
# photo only for the big ones (ResNet-152's are ~600 MB). GoogLeNet and Inception-v3
# are built with transform_input on, so its node (channel_affine) is tested.
set(_ref_opts_alexnet "")
set(_ref_opts_vgg11 --layer-inputs 2)
set(_ref_opts_vgg11_bn --layer-inputs 2)
set(_ref_opts_resnet18 --num-inputs 2)
set(_ref_opts_resnet50 --num-inputs 2 --layer-inputs 1)
set(_ref_opts_googlenet --num-inputs 2 --transform-input on)
set(_ref_opts_inception_v3 --num-inputs 1 --transform-input on)
set(_ref_opts_resnet152 --num-inputs 1)
set(_exp_opts_googlenet --transform-input on)
set(_exp_opts_inception_v3 --transform-input on)

foreach(_arch alexnet vgg11 vgg11_bn resnet18 resnet50 googlenet inception_v3 resnet152)
  set(_opts ${_ref_opts_${_arch}})
  set(_model ${_ref_dir}/${_arch}.h5)
  set(_ref ${_ref_dir}/${_arch}_reference.h5)

  add_test(NAME reference_${_arch}_export
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/scripts/export_torchvision.py
                   ${_arch} -o ${_model} --seed 0 ${_exp_opts_${_arch}})
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
    LABELS reference FIXTURES_SETUP reference_${_arch} TIMEOUT 900 PROCESSORS 2)
  set_tests_properties(reference_${_arch} PROPERTIES
    LABELS reference FIXTURES_REQUIRED reference_${_arch} TIMEOUT 900 PROCESSORS 2)
  set_tests_properties(reference_${_arch}_cleanup PROPERTIES
    LABELS reference FIXTURES_CLEANUP reference_${_arch})
endforeach()

# Mutation checks of the float32 oracle (issue 10): each builds test_reference against
# a salcore whose float32 copy carries one deliberate bug (the float64 copy is the
# real one, so the float64 half of the test still passes), or perturbs the float32
# input or maps, and passes only when the float32 oracle reports failures
# (--expect-f32-fail). On AlexNet's photo input, ~15 s each.
#   relu_rule      conv2_relu applies another method's backward rule
#   argmax         max-pool records the element right of the first maximum
#   pool_backward  max-pool backward routes each plane's first window one element off
#   gray           1% of the input pixels one gray level off (a preprocessing slip)
#   scale          every float32 map times 1.001
set(_mut_dir ${CMAKE_CURRENT_BINARY_DIR}/mutants)
get_target_property(_real_sources salcore_f32 SOURCES)
get_target_property(_core_sources salcore SOURCES)

# salcore_mutant(NAME FILE FROM TO): core/FILE with the one occurrence of FROM
# replaced by TO, compiled as float32; configuring fails when FROM is not found
# exactly once, so a mutant never silently stops mutating.
function(salcore_mutant name file from to)
  set(_path ${PROJECT_SOURCE_DIR}/core/${file})
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_path})
  file(READ ${_path} _src)
  string(FIND "${_src}" "${from}" _first)
  string(FIND "${_src}" "${from}" _last REVERSE)
  if(_first EQUAL -1 OR NOT _first EQUAL _last)
    message(FATAL_ERROR "mutant ${name}: '${from}' is not in core/${file} exactly once; "
                        "update the mutant in tests/reference.cmake")
  endif()
  string(REPLACE "${from}" "${to}" _src "${_src}")
  file(WRITE ${_mut_dir}/${name}/${file} "${_src}")
  set(_srcs "")
  foreach(_s ${_real_sources})
    if(_s STREQUAL file)
      list(APPEND _srcs ${_mut_dir}/${name}/${file})
    else()
      list(APPEND _srcs ${PROJECT_SOURCE_DIR}/core/${_s})
    endif()
  endforeach()
  add_library(salcore_f32_${name} OBJECT ${_srcs})
  target_include_directories(salcore_f32_${name} PRIVATE ${PROJECT_SOURCE_DIR}/core
                             ${OpenBLAS_INCLUDE_DIRS})
  target_compile_definitions(salcore_f32_${name} PRIVATE SAL_DOUBLE=0)
  # salcore's own sources, with the float32 objects swapped for the mutant's.
  set(_lib "")
  foreach(_s ${_core_sources})
    if(_s STREQUAL "$<TARGET_OBJECTS:salcore_f32>")
      list(APPEND _lib "$<TARGET_OBJECTS:salcore_f32_${name}>")
    elseif(_s MATCHES "^\\$<")
      list(APPEND _lib "${_s}")
    else()
      list(APPEND _lib ${PROJECT_SOURCE_DIR}/core/${_s})
    endif()
  endforeach()
  add_library(salcore_${name} STATIC ${_lib})
  target_include_directories(salcore_${name} PUBLIC ${PROJECT_SOURCE_DIR}/core
                             ${OpenBLAS_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS})
  target_link_libraries(salcore_${name} PUBLIC ${OpenBLAS_LIBRARIES} ${HDF5_C_LIBRARIES} m)
  target_compile_definitions(salcore_${name} PUBLIC ${HDF5_DEFINITIONS})
  add_executable(test_reference_${name} ${CMAKE_CURRENT_SOURCE_DIR}/test_reference.c
                 ${CMAKE_CURRENT_SOURCE_DIR}/reference_file.c)
  target_link_libraries(test_reference_${name} PRIVATE salcore_${name})
endfunction()

salcore_mutant(relu_rule net.c
  "sal_method rule = e->methods[e->seed_method[s / j->n]];"
  "sal_method rule = e->methods[e->seed_method[s / j->n]];
        if (!strcmp(e->m->layers[j->i].name, \"conv2_relu\"))
                    rule = rule == SAL_METHOD_GUIDED ? SAL_METHOD_VANILLA : SAL_METHOD_GUIDED;")
salcore_mutant(argmax maxpool.c
  "argmax[l] = (int32_t)at[l];"
  "argmax[l] = (int32_t)(at[l] + (at[l] % W < x0 + l * sw + kw - 1));")
salcore_mutant(pool_backward maxpool.c
  "d[a[o]] += g[o];"
  "d[a[o] + (o == 0 && (size_t)a[o] + 1 < in_plane)] += g[o];")

# Graph mutants (issue 11), on ResNet-18 and GoogLeNet's photo:
#   grad_sum       a node feeding several others keeps the last gradient instead of
#                  the sum (a residual block's input loses the identity path's share)
#   concat_slice   concat backward hands its second input the first input's slice
salcore_mutant(grad_sum net.c
  "ew_run(e, EW_ADD, g, dst, 1,"
  "ew_run(e, EW_COPY, g, dst, 1,")
salcore_mutant(concat_slice net.c
  "dout + off, rows, ek, ek, v.out_elems,"
  "dout + (k == 1 ? 0 : off), rows, ek, ek, v.out_elems,")
foreach(_pair "grad_sum resnet18" "concat_slice googlenet")
  separate_arguments(_pair)
  list(GET _pair 0 _mut)
  list(GET _pair 1 _arch)
  add_test(NAME reference_${_arch}_mutant_${_mut}
           COMMAND test_reference_${_mut} ${_ref_dir}/${_arch}.h5
                   ${_ref_dir}/${_arch}_reference.h5 --inputs 1 --expect-f32-fail)
  set_tests_properties(reference_${_arch}_mutant_${_mut} PROPERTIES
    LABELS reference FIXTURES_REQUIRED reference_${_arch} TIMEOUT 300 PROCESSORS 2)
endforeach()

set(_alex_model ${_ref_dir}/alexnet.h5)
set(_alex_ref ${_ref_dir}/alexnet_reference.h5)
foreach(_mut relu_rule argmax pool_backward gray scale)
  if(_mut STREQUAL gray OR _mut STREQUAL scale)
    set(_cmd test_reference ${_alex_model} ${_alex_ref} --perturb ${_mut})
  else()
    set(_cmd test_reference_${_mut} ${_alex_model} ${_alex_ref})
  endif()
  add_test(NAME reference_alexnet_mutant_${_mut}
           COMMAND ${_cmd} --inputs 1 --expect-f32-fail)
  set_tests_properties(reference_alexnet_mutant_${_mut} PROPERTIES
    LABELS reference FIXTURES_REQUIRED reference_alexnet TIMEOUT 300 PROCESSORS 2)
endforeach()
