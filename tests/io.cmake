# tests/io.cmake - checkpoint and embedding file formats (model/io/, train/embedding_io.c, the
# ti-inspect and ti-convert tools). Fixtures: tests/fixtures/io (scripts/oracle/io_fixtures.py).
ti_add_test(test_io_zip SOURCES test_io_zip.c LABELS cpu LIBS ti_model)
ti_add_test(test_io_pickle SOURCES test_io_pickle.c LABELS cpu LIBS ti_model)
ti_add_test(test_io_torchfile SOURCES test_io_torchfile.c LABELS cpu LIBS ti_model)
ti_add_test(test_io_safetensors SOURCES test_io_safetensors.c LABELS cpu LIBS ti_model)
ti_add_test(test_io_ckpt SOURCES test_io_ckpt.c LABELS cpu LIBS ti_model)
ti_add_test(test_io_embedding SOURCES test_io_embedding.c LABELS cpu LIBS ti_train)
ti_add_test(test_io_tools SOURCES test_io_tools.c LABELS cpu LIBS ti_train
            ARGS $<TARGET_FILE:ti-inspect> $<TARGET_FILE:ti-convert>)
add_dependencies(test_io_tools ti-inspect ti-convert)
# The one place the suite runs Python: Debian's python3 + python3-torch (scripts/deps.sh installs
# them) load what ti wrote. SKIP (77) when the interpreter or torch is missing, never PASS.
ti_add_test(test_io_python SOURCES test_io_python.c LABELS python LIBS ti_train TIMEOUT 600)
# libFuzzer harnesses for the zip, pickle and safetensors readers (make fuzz)
if(TI_FUZZ)
  add_subdirectory(fuzz)
endif()
# A full-size SD v1 checkpoint layout (~4.3 GB, generated with python3-torch, then deleted).
ti_add_test(test_io_fullsize SOURCES test_io_fullsize.c LABELS "slow;python" LIBS ti_model
            TIMEOUT 1800)
