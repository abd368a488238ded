# tests/train.cmake - ti-train (train/ti_train.c and its library parts train/cli.c,
# train/run_log.c, train/metrics.c).
# test_train_cli: the command line, config assembly, LR, run-folder names, the checkpoint and
# image schedule, the saved configs and metrics.h5/.csv (no model needed).
ti_add_test(test_train_cli SOURCES test_train_cli.c LABELS cpu LIBS ti_train)

# make_tiny_ckpt CONFIG OUT [SEED]: random weights for the tiny configs (ti-train's e2e tests)
add_executable(make_tiny_ckpt make_tiny_ckpt.c)
ti_c_target(make_tiny_ckpt)
target_link_libraries(make_tiny_ckpt PRIVATE ti_model)

# ti-train end to end (tests/test_ti_train.sh MODE ...): tiny SD / LDM models with random
# weights, a few CPU steps each. Needs data/ (stb) and libyaml; `torch` is the python check.
if(TI_HAVE_DATA AND TI_HAVE_YAML)
  foreach(mode e2e determ kill9 dryrun bad torch)
    add_test(NAME test_ti_train_${mode}
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_ti_train.sh ${mode}
                     $<TARGET_FILE:ti-train> $<TARGET_FILE:make_tiny_ckpt> $<TARGET_FILE:ti-inspect>
             WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(test_ti_train_${mode} PROPERTIES LABELS cpu SKIP_RETURN_CODE 77
                         TIMEOUT 300)
  endforeach()
  set_tests_properties(test_ti_train_torch PROPERTIES LABELS python)
  # data parallelism over MPI: SKIP (77) when ti-train has no MPI or mpirun is missing
  if(TI_HAVE_MPI AND TI_MPIEXEC)
    set(_ti_mpiexec ${TI_MPIEXEC})
  else()
    set(_ti_mpiexec "")
  endif()
  add_test(NAME test_ti_train_mpi
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_ti_train.sh mpi
                   $<TARGET_FILE:ti-train> $<TARGET_FILE:make_tiny_ckpt> $<TARGET_FILE:ti-inspect>
                   "${_ti_mpiexec}"
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(test_ti_train_mpi PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 300)
else()
  foreach(mode e2e determ kill9 dryrun bad torch mpi)
    ti_skip_test(test_ti_train_${mode} cpu "built without data/ (libstb-dev) or libyaml")
  endforeach()
endif()
