# `cmake --install build --prefix P` puts what users run where they expect it:
#   P/bin/salpipe                       (the install rule is in pipeline/CMakeLists.txt)
#   P/share/salpipe/scripts/            export_torchvision.py (+ export_ops.py), salview.py,
#                                       merge_parts.py,
#                                       train_demo_model.py (executable), salpipe.sbatch
#                                       (executable), read_saliency.m
#   P/share/salpipe/configs/            configs/*.toml
#   P/share/salpipe/models/, data/demo/ the demo model and images, when the source
#                                       tree has them, so configs/demo.toml's relative
#                                       paths ("../models/...") hold in P too
#   P/share/doc/salpipe/                README.md and docs/ (with docs/img/)
# salpipe.sbatch finds P/bin/salpipe from P/share/salpipe/scripts by itself.
include(GNUInstallDirs)

set(SALPIPE_INSTALL_SHARE ${CMAKE_INSTALL_DATADIR}/salpipe)

set(_salpipe_programs)
foreach(f export_torchvision.py salview.py merge_parts.py train_demo_model.py salpipe.sbatch)
  if(EXISTS ${PROJECT_SOURCE_DIR}/scripts/${f})
    list(APPEND _salpipe_programs ${PROJECT_SOURCE_DIR}/scripts/${f})
  endif()
endforeach()
install(PROGRAMS ${_salpipe_programs} DESTINATION ${SALPIPE_INSTALL_SHARE}/scripts)
install(FILES ${PROJECT_SOURCE_DIR}/scripts/read_saliency.m
              ${PROJECT_SOURCE_DIR}/scripts/export_ops.py
        DESTINATION ${SALPIPE_INSTALL_SHARE}/scripts)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/configs/ DESTINATION ${SALPIPE_INSTALL_SHARE}/configs
        FILES_MATCHING PATTERN "*.toml")
foreach(d models data/demo)
  if(IS_DIRECTORY ${PROJECT_SOURCE_DIR}/${d})
    install(DIRECTORY ${PROJECT_SOURCE_DIR}/${d}/ DESTINATION ${SALPIPE_INSTALL_SHARE}/${d})
  endif()
endforeach()

install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR})
