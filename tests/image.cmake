# Image input (issue 3, core/image.h) against Debian's Pillow 9.4 and torchvision 0.14.
#   image_refs       fixture: make_image_refs.py writes test images (crops of the shared
#                    photo, synthetic textures, crafted bad files) and references
#   image_reference  decoded / resized bytes identical, float32 and float64 tensors
#                    bit-identical
#   image_bad        every bad file refused with file name and reason; caller continues
# Labels: all are `unit` (fast, and the sanitizer pass of scripts/test.sh runs only
# `unit`, so decoding real and broken files runs under ASan + UBSan); image_reference
# is also `reference`, being a comparison with Python's output.
if(NOT DEFINED SALPIPE_SHARED_DIR)
  set(SALPIPE_SHARED_DIR "${CMAKE_SOURCE_DIR}/../shared" CACHE PATH
      "Directory with the shared test data (data/n03223299_27176.JPEG)")
endif()
set(SAL_IMAGE_PHOTO "${SALPIPE_SHARED_DIR}/data/n03223299_27176.JPEG")
set(SAL_IMAGE_DATA "${CMAKE_CURRENT_BINARY_DIR}/image_data")

add_executable(test_image image/test_image.c)
target_link_libraries(test_image PRIVATE salimage m)
add_executable(test_image_bad image/test_image_bad.c)
target_link_libraries(test_image_bad PRIVATE salimage)

add_test(NAME image_refs
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/image/make_image_refs.py
          --photo ${SAL_IMAGE_PHOTO} --out ${SAL_IMAGE_DATA})
set_tests_properties(image_refs PROPERTIES FIXTURES_SETUP image_data LABELS unit
  TIMEOUT 300)

add_test(NAME image_reference COMMAND test_image ${SAL_IMAGE_DATA})
set_tests_properties(image_reference PROPERTIES FIXTURES_REQUIRED image_data
  LABELS "unit;reference" TIMEOUT 300)

add_test(NAME image_bad COMMAND test_image_bad ${SAL_IMAGE_DATA})
set_tests_properties(image_bad PROPERTIES FIXTURES_REQUIRED image_data LABELS unit
  TIMEOUT 300)
