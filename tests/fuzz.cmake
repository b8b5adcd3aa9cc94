# Fuzz harnesses of every parser (issue 10; tests/fuzz/, docs/reliability.md).
#
# Every build: fuzz_replay_NAME runs the harness's entry function on saved inputs
# without libFuzzer. Label unit (so they run in the release and the ASan + UBSan
# builds of scripts/test.sh):
#   fuzz_corpus_NAME                 the committed seed corpus, tests/fuzz/corpus/NAME
#   fuzz_regression_NAME_INPUT       each input a fuzzer once crashed on,
#                                    tests/fuzz/regressions/NAME/INPUT
# Together about 5 s under ASan for the chain-only corpus of issue 10; the graph inputs
# of issue 11 (1,158 model inputs now, each writing and running a 22-node graph) take
# 50 s under ASan + UBSan on this loaded machine, 12 s in the release build.
#
# With -DSALPIPE_FUZZ=ON (clang-14; scripts/fuzz.sh configures build-fuzz/):
#   fuzz_NAME        the libFuzzer binary (ASan + UBSan, coverage-guided)
#   fuzz_smoke_NAME  12 s of fuzzing from the seed corpus; any crash, leak, UBSan
#                    report or >25 s input fails it. Label fuzz; about 15 s each
#                    (the model harness first runs its 1,158-input corpus: 100 s
#                    measured here at load 14, hence its longer timeout).
set(SAL_FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
set(SAL_FUZZ_HARNESSES config sources image model messages)
set(SAL_FUZZ_config_SOURCES fuzz_config.c model_gen.c model_spec.c ${PROJECT_SOURCE_DIR}/pipeline/plan.c)
set(SAL_FUZZ_config_LIBS salconfig saloutput salcore)
set(SAL_FUZZ_sources_SOURCES fuzz_sources.c)
set(SAL_FUZZ_sources_LIBS salconfig)
set(SAL_FUZZ_image_SOURCES fuzz_image.c)
set(SAL_FUZZ_image_LIBS salimage)
set(SAL_FUZZ_model_SOURCES fuzz_model.c model_gen.c model_spec.c)
set(SAL_FUZZ_model_LIBS salcore)
set(SAL_FUZZ_model_ARGS -max_len=512 -len_control=0) # slow: no length ramp (fuzz.sh)
set(SAL_FUZZ_model_TIMEOUT 300) # its corpus alone takes 50-100 s under ASan here
set(SAL_FUZZ_messages_SOURCES fuzz_messages.c ${PROJECT_SOURCE_DIR}/pipeline/plan.c
    ${PROJECT_SOURCE_DIR}/pipeline/batch.c)
set(SAL_FUZZ_messages_LIBS salconfig saloutput salcore)

add_custom_target(fuzz_all)
foreach(h ${SAL_FUZZ_HARNESSES})
  set(srcs)
  foreach(s ${SAL_FUZZ_${h}_SOURCES})
    if(IS_ABSOLUTE ${s})
      list(APPEND srcs ${s})
    else()
      list(APPEND srcs ${SAL_FUZZ_DIR}/${s})
    endif()
  endforeach()
  list(APPEND srcs ${SAL_FUZZ_DIR}/fuzz_common.c)

  add_executable(fuzz_replay_${h} ${SAL_FUZZ_DIR}/replay_main.c ${srcs})
  target_include_directories(fuzz_replay_${h} PRIVATE ${SAL_FUZZ_DIR})
  target_link_libraries(fuzz_replay_${h} PRIVATE ${SAL_FUZZ_${h}_LIBS})
  add_dependencies(fuzz_all fuzz_replay_${h})
  add_test(NAME fuzz_corpus_${h} COMMAND fuzz_replay_${h} ${SAL_FUZZ_DIR}/corpus/${h})
  set(timeout 120)
  if(DEFINED SAL_FUZZ_${h}_TIMEOUT)
    set(timeout ${SAL_FUZZ_${h}_TIMEOUT})
  endif()
  set_tests_properties(fuzz_corpus_${h} PROPERTIES LABELS unit TIMEOUT ${timeout})
  file(GLOB regressions ${SAL_FUZZ_DIR}/regressions/${h}/*)
  foreach(r ${regressions})
    get_filename_component(rname ${r} NAME)
    add_test(NAME fuzz_regression_${h}_${rname} COMMAND fuzz_replay_${h} ${r})
    set_tests_properties(fuzz_regression_${h}_${rname} PROPERTIES LABELS unit TIMEOUT 60)
  endforeach()

  if(SALPIPE_FUZZ)
    add_executable(fuzz_${h} ${srcs})
    target_include_directories(fuzz_${h} PRIVATE ${SAL_FUZZ_DIR})
    target_link_libraries(fuzz_${h} PRIVATE ${SAL_FUZZ_${h}_LIBS})
    target_link_options(fuzz_${h} PRIVATE -fsanitize=fuzzer)
    add_dependencies(fuzz_all fuzz_${h})
    set(dict)
    if(EXISTS ${SAL_FUZZ_DIR}/${h}.dict)
      set(dict -dict=${SAL_FUZZ_DIR}/${h}.dict)
    endif()
    # New inputs go to a scratch copy; the committed corpus is only read.
    set(work ${CMAKE_CURRENT_BINARY_DIR}/fuzz_work/${h})
    file(MAKE_DIRECTORY ${work})
    add_test(NAME fuzz_smoke_${h}
      COMMAND fuzz_${h} -max_total_time=12 -timeout=25 -rss_limit_mb=2048
              -print_final_stats=1 ${dict} ${SAL_FUZZ_${h}_ARGS} ${work}
              ${SAL_FUZZ_DIR}/corpus/${h})
    set_tests_properties(fuzz_smoke_${h} PROPERTIES LABELS fuzz TIMEOUT ${timeout}
      ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
  endif()
endforeach()
