# Identical patches, identical outputs (core/samepatch.c): layer cases on every
# convolution path against a brute-force reference, then each conv layer of AlexNet
# and VGG11-BN through the engine in every convolution mode (test_samepatch.c).
# Compiled once per precision. About 10 s.
foreach(prec f32 f64)
  add_executable(test_samepatch_${prec} ${CMAKE_CURRENT_LIST_DIR}/test_samepatch.c
                 ${CMAKE_CURRENT_LIST_DIR}/layer_check.c)
  target_link_libraries(test_samepatch_${prec} PRIVATE salcore m)
  add_test(NAME samepatch_${prec} COMMAND test_samepatch_${prec}
           ${SAL_TEST_MODEL_DIR}/alexnet_seed0.h5 ${SAL_TEST_MODEL_DIR}/vgg11_bn_seed0.h5)
  set_tests_properties(samepatch_${prec} PROPERTIES LABELS unit
                       FIXTURES_REQUIRED "model_alexnet;model_vgg11_bn"
                       ENVIRONMENT OPENBLAS_NUM_THREADS=1)
endforeach()
target_compile_definitions(test_samepatch_f32 PRIVATE SAL_DOUBLE=0)
target_compile_definitions(test_samepatch_f64 PRIVATE SAL_DOUBLE=1)
