# The salpipe program end to end (issue 4), driven by Python scripts in tests/pipeline/
# that run the built salpipe alone and under mpiexec and read its output with h5py and
# xarray. Every script prints each check and exits 1 if any failed.
#
#   pipeline_data              fixture: test images (crops of the shared photo, bad
#                              files) and the PyTorch reference maps (make_data.py)
#   pipeline_e2e_float32       vs PyTorch; alone, -n 1, -n 2, -n 3 bit-identical [mpi]
#   pipeline_e2e_float64       vs PyTorch float64 to 1e-9, -n 2                   [mpi]
#   pipeline_format            h5py layout, attributes, dimension scales, xarray  [unit]
#   pipeline_kill_resume       SIGKILL at several points, resumed: same bits       [mpi]
#   pipeline_signal_resume     SIGTERM / SIGUSR1: exit 4, resumed: same bits       [mpi]
#   pipeline_faults_<case>     a rank SIGKILLed (worker, rank 0) under -n 3, a second
#                              job or another writer on the output: no hang, the
#                              message, the exit code, resumed: same bits          [mpi]
#   pipeline_config_<case>     one config error each: exit 2, file/key/line named  [unit]
#   pipeline_output_mismatch   another config's output: exit 2, --overwrite       [unit]
#   pipeline_output_unwritable output directory cannot be created: exit 3        [unit]
#   pipeline_output_disk_full  output cannot grow mid-run: exit 3, resumable     [unit]
#   pipeline_bad_images        corrupt/missing images recorded, exit 1, retried   [unit]
#   pipeline_bad_weights       NaN/Inf weights: exit 2, alone and -n 2, no output  [mpi]
#   pipeline_cli               --check, --layers, --version, --help, bad option   [unit]
#   pipeline_team              the decode/compress thread team (test_team.c)       [unit]
#   pipeline_threads_<prec>    threads = 1, 2, 3 and a resume across them: same bits [mpi]
#   pipeline_plans_<mode>      plans that cannot fit: size limits (exit 2), disk space
#                              on a 4 MiB tmpfs (exit 3), a million-line list     [mpi]
#   pipeline_longrun           4000 images x 30 maps on 2 ranks: RSS flat         [mpi]
#   pipeline_writers_<mode>    [output] writers = 2: part files behind virtual
#                              datasets, same bits as one file, kill/resume, refusals [mpi]
#   pipeline_graph_e2e         exported resnet18 and googlenet, DNNBrain and inner layer
#                              names, float64 -n 2 vs PyTorch on torchvision to 1e-9 [mpi]
#   pipeline_graph_cli         --layers, --check (Inception-v3 299x299), unknown and
#                              doubly named layers on exported graph networks     [unit]
#   pipeline_methods_<mode>    issue 12's methods: bit-identical over ranks, batches
#                              and a resume; float64 vs the reference; SmoothGrad's
#                              1/sqrt(samples); Integrated Gradients' gap   [mpi]
#
# The models are the fixtures model_alexnet and model_tiny (tests/model.cmake). Open
# MPI's run-as-root permission is given to these tests only (ENVIRONMENT; the scripts
# set it too), and --oversubscribe is passed only for -n 3.

# The thread team that decodes and compresses when [run] threads > 1 (test_team.c).
find_package(Threads REQUIRED)
add_executable(test_team ${CMAKE_CURRENT_LIST_DIR}/test_team.c
               ${PROJECT_SOURCE_DIR}/pipeline/team.c)
target_include_directories(test_team PRIVATE ${PROJECT_SOURCE_DIR}/pipeline)
target_link_libraries(test_team PRIVATE Threads::Threads)
add_test(NAME pipeline_team COMMAND test_team)
set_tests_properties(pipeline_team PROPERTIES LABELS unit TIMEOUT 120)

if(NOT DEFINED SALPIPE_SHARED_DIR)
  set(SALPIPE_SHARED_DIR "${CMAKE_SOURCE_DIR}/../shared" CACHE PATH
      "Directory with the shared test data (data/n03223299_27176.JPEG)")
endif()
set(_pl_src ${CMAKE_CURRENT_SOURCE_DIR}/pipeline)
set(_pl_data ${CMAKE_CURRENT_BINARY_DIR}/pipeline_data)
set(_pl_work ${CMAKE_CURRENT_BINARY_DIR}/pipeline_work)
set(_pl_model ${SAL_TEST_MODEL_DIR}/alexnet_seed0.h5)
set(_pl_env "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;PYTHONDONTWRITEBYTECODE=1")

add_test(NAME pipeline_data
  COMMAND ${Python3_EXECUTABLE} ${_pl_src}/make_data.py
          --photo ${SALPIPE_SHARED_DIR}/data/n03223299_27176.JPEG --out ${_pl_data})
set_tests_properties(pipeline_data PROPERTIES
  FIXTURES_SETUP pipeline_data LABELS unit TIMEOUT 300 PROCESSORS 2)

# pipeline_test(NAME SCRIPT LABEL TIMEOUT PROCESSORS ARGS...)
function(pipeline_test name script label timeout procs)
  add_test(NAME ${name}
    COMMAND ${Python3_EXECUTABLE} ${_pl_src}/${script} ${ARGN}
            --salpipe $<TARGET_FILE:salpipe> --mpiexec ${MPIEXEC_EXECUTABLE}
            --model ${_pl_model} --tiny ${SAL_TEST_MODEL_DIR}/tiny/good.h5
            --data ${_pl_data} --work ${_pl_work}/${name})
  set_tests_properties(${name} PROPERTIES
    FIXTURES_REQUIRED "model_alexnet;model_tiny;pipeline_data" LABELS ${label}
    TIMEOUT ${timeout} PROCESSORS ${procs} ENVIRONMENT "${_pl_env}")
endfunction()

pipeline_test(pipeline_e2e_float32 test_e2e.py mpi 600 2 float32)
pipeline_test(pipeline_e2e_float64 test_e2e.py mpi 600 2 float64)
pipeline_test(pipeline_format test_format.py unit 600 1)
# Timing matters (kills at chosen moments): PROCESSORS 2 keeps other tests off the cores.
pipeline_test(pipeline_kill_resume test_resume.py mpi 600 2 kill)
pipeline_test(pipeline_signal_resume test_resume.py mpi 600 2 signal)
# Faults of a running job (test_faults.py): worker_kill and rank0_kill about 60-90 s
# each here (a reference run, two killed -n 3 runs and their resumes), the others 30 s.
foreach(case worker_kill rank0_kill concurrent_job held_open)
  pipeline_test(pipeline_faults_${case} test_faults.py mpi 400 2 ${case})
endforeach()

foreach(case syntax unknown_key wrong_type missing_model unknown_layer unit_zero
             unit_beyond unit_range_beyond empty_images two_sources unknown_method
             missing_output smoothgrad_samples_zero gradcam_no_spatial ig_trapezoid_one_step
             channels_unknown)
  pipeline_test(pipeline_config_${case} test_errors.py unit 120 1 config ${case})
endforeach()
pipeline_test(pipeline_output_mismatch test_errors.py unit 300 1 mismatch)
pipeline_test(pipeline_output_unwritable test_errors.py unit 120 1 unwritable)
pipeline_test(pipeline_output_disk_full test_errors.py unit 300 1 disk-full)
pipeline_test(pipeline_bad_images test_errors.py unit 300 1 bad-images)
pipeline_test(pipeline_bad_weights test_errors.py mpi 300 2 bad-weights)
pipeline_test(pipeline_cli test_errors.py unit 120 1 cli --version ${PROJECT_VERSION})
# Issue 10: the same job with threads = 1, 2, 3 (and killed at 2, resumed at 3) gives
# bit-identical maps; about 30 s (float32) and 60 s (float64) on 2 busy cores.
pipeline_test(pipeline_threads_float32 test_threads.py mpi 300 2 float32)
pipeline_test(pipeline_threads_float64 test_threads.py mpi 300 2 float64)

# Plans that cannot fit and a long run (issue 10, docs/reliability.md); the demo model
# and images of the repository. limits ~30 s, disk ~15 s (skipped, exit 77, where
# mount is refused), million ~30-60 s, longrun ~50-100 s.
set(_pl_demo --demo-model ${PROJECT_SOURCE_DIR}/models/fashion_mnist_cnn.h5
             --demo-images ${PROJECT_SOURCE_DIR}/data/demo)
foreach(mode limits disk million)
  pipeline_test(pipeline_plans_${mode} test_plans.py mpi 300 2 ${mode} ${_pl_demo})
endforeach()
set_tests_properties(pipeline_plans_disk pipeline_plans_million PROPERTIES SKIP_RETURN_CODE 77)
pipeline_test(pipeline_longrun test_longrun.py mpi 600 2 ${_pl_demo})
# Issue 14's [output] writers = K (test_writers.py), the demo model under -n 3:
# same    writers = 2 vs writers = 1, every dataset through the virtual datasets;
#         xarray, --check, h5repack
# kill    SIGKILL twice mid-run and resumed: bit-identical
# refuse  a part missing, swapped or another job's; another K; writers = 0, >= ranks
foreach(mode same kill refuse)
  pipeline_test(pipeline_writers_${mode} test_writers.py mpi 300 2 ${mode} ${_pl_demo})
endforeach()

# Issue 11: graph networks through the whole program (test_graph.py), each exporting
# its networks with scripts/export_torchvision.py: e2e ~60 s of CPU, 1.5 min on 2
# cores loaded 7-fold (two exports, two float64 runs under -n 2, and PyTorch's float64
# reference, most of it), cli ~7 s of CPU, 20 s loaded (resnet18 and inception_v3
# exported; salpipe only reads their headers).
set(_pl_exporter --exporter ${PROJECT_SOURCE_DIR}/scripts/export_torchvision.py)
pipeline_test(pipeline_graph_e2e test_graph.py mpi 600 2 e2e ${_pl_exporter})
pipeline_test(pipeline_graph_cli test_graph.py unit 300 1 cli ${_pl_exporter})

# Issue 12's methods through the whole program (test_methods.py), seeded AlexNet:
# ranks     all eight methods, 12 images, -n 1/2/3 and another batch, a SIGUSR1 stop
#           resumed under -n 3: every dataset bit-identical
# float64   the same methods and other parameters vs methods_reference.py, SmoothGrad
#           with the C noise (noise_dump): 1e-9 of each map's max
# smoothgrad  4, 16, 64 samples vs PyTorch's own 256-sample estimate: the distance
#           falls as 1/sqrt(samples)
# ig_gap    steps 2, 8, 32, both rules: the completeness gap falls
# Wall (CPU) seconds on the 2 cores with other jobs running (load 4-7): ranks 93
# (84), float64 105 (65), smoothgrad 67 (38), ig_gap 81 (47).
# max_abs   issue 14's [output] channels = "max_abs" against the full maps, float32
#           (-n 2, -n 3) and float64 (-n 2), 4 images: bit for bit
foreach(mode ranks float64 smoothgrad ig_gap max_abs)
  pipeline_test(pipeline_methods_${mode} test_methods.py mpi 600 2 ${mode}
                --noise-dump $<TARGET_FILE:noise_dump>)
endforeach()
