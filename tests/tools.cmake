# The user tools (issue 5): scripts/salview.py, scripts/salpipe.sbatch,
# scripts/read_saliency.m and `cmake --install`, driven by Python scripts in tests/tools/
# that print each check and exit 1 if any failed.
#
#   tools_data               fixture: 24 crops of the shared photo, a salpipe output of
#                            2 images x 2 targets x 2 methods, a synthetic 1-channel
#                            file with failed / not-done images (make_data.py)
#   tools_salview_<mode>     rgb, gray, select, synthetic, gradcam (test_salview.py) [unit]
#   tools_sbatch_fallback    the job script without SLURM: mpirun -n 2, exit 0  [mpi]
#   tools_sbatch_usr1        SIGUSR1, then Ctrl-C: exit 4, partial; resumed     [mpi]
#   tools_sbatch_resubmit    pretend SLURM: resubmitted on USR1, not USR2/TERM  [mpi]
#   tools_slurm              a real SLURM started by the test: time limit ->
#                            drain + resubmit chain; scancel + sbatch (both
#                            bit-identical to a plain run); warning signal at
#                            the job's start (2.5-3.5 min)                     [mpi]
#   tools_matlab_mirror      read_saliency.m's start/count/permute via h5py    [unit]
#   tools_install            cmake --install into a scratch prefix             [unit]
if(NOT DEFINED SALPIPE_SHARED_DIR)
  set(SALPIPE_SHARED_DIR "${CMAKE_SOURCE_DIR}/../shared" CACHE PATH
      "Directory with the shared test data (data/n03223299_27176.JPEG)")
endif()
set(_tools_src ${CMAKE_CURRENT_SOURCE_DIR}/tools)
set(_tools_data ${CMAKE_CURRENT_BINARY_DIR}/tools_data)
set(_tools_work ${CMAKE_CURRENT_BINARY_DIR}/tools_work)
set(_tools_model ${SAL_TEST_MODEL_DIR}/alexnet_seed0.h5)
# Open MPI's run-as-root permission, for these tests' children only.
set(_tools_env "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")

add_test(NAME tools_data
  COMMAND ${Python3_EXECUTABLE} ${_tools_src}/make_data.py
          --photo ${SALPIPE_SHARED_DIR}/data/n03223299_27176.JPEG
          --salpipe $<TARGET_FILE:salpipe> --model ${_tools_model} --out ${_tools_data})
set_tests_properties(tools_data PROPERTIES
  FIXTURES_SETUP tools_data FIXTURES_REQUIRED model_alexnet LABELS unit TIMEOUT 300
  ENVIRONMENT "${_tools_env}")

foreach(mode rgb gray select synthetic gradcam)
  add_test(NAME tools_salview_${mode}
    COMMAND ${Python3_EXECUTABLE} ${_tools_src}/test_salview.py ${mode}
            --data ${_tools_data} --work ${_tools_work}/salview_${mode})
  set_tests_properties(tools_salview_${mode} PROPERTIES
    FIXTURES_REQUIRED tools_data LABELS unit TIMEOUT 300)
endforeach()

# Timing matters (a signal once the output shows progress): PROCESSORS 2 keeps other
# tests off the cores.
foreach(mode fallback usr1 resubmit)
  add_test(NAME tools_sbatch_${mode}
    COMMAND ${Python3_EXECUTABLE} ${_tools_src}/test_sbatch.py ${mode}
            --salpipe $<TARGET_FILE:salpipe> --model ${_tools_model}
            --data ${_tools_data} --work ${_tools_work}/sbatch_${mode})
  set_tests_properties(tools_sbatch_${mode} PROPERTIES
    FIXTURES_REQUIRED "model_alexnet;tools_data" LABELS mpi TIMEOUT 600 PROCESSORS 2
    ENVIRONMENT "${_tools_env}")
endforeach()

# Debian's slurmctld, slurmd and munged, started and stopped by the test itself; exit
# 77 (skipped, reason printed) where they cannot run. 2.5-3.5 minutes, set by the
# 1-minute time limit (SLURM's minimum) and slurmctld's 30 s check interval.
add_test(NAME tools_slurm
  COMMAND ${Python3_EXECUTABLE} ${_tools_src}/test_slurm.py
          --salpipe $<TARGET_FILE:salpipe> --work ${_tools_work}/slurm)
set_tests_properties(tools_slurm PROPERTIES
  LABELS mpi TIMEOUT 600 PROCESSORS 2 SKIP_RETURN_CODE 77 ENVIRONMENT "${_tools_env}")

add_test(NAME tools_matlab_mirror
  COMMAND ${Python3_EXECUTABLE} ${_tools_src}/test_matlab_mirror.py --data ${_tools_data})
set_tests_properties(tools_matlab_mirror PROPERTIES
  FIXTURES_REQUIRED tools_data LABELS unit TIMEOUT 120)

add_test(NAME tools_install
  COMMAND ${Python3_EXECUTABLE} ${_tools_src}/test_install.py --cmake ${CMAKE_COMMAND}
          --build ${CMAKE_BINARY_DIR} --prefix ${_tools_work}/install
          --version ${PROJECT_VERSION})
set_tests_properties(tools_install PROPERTIES
  LABELS unit TIMEOUT 120 ENVIRONMENT "${_tools_env}")
