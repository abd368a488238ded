# tests/fuzz.cmake - the libFuzzer harnesses (tests/fuzz/fuzz_*.c) replayed over their committed
# seed corpus with a plain main (tests/fuzz/replay_main.c), in every build: the harnesses keep
# compiling, and every seed (valid, truncated and hostile files) must go through the readers
# without a crash (ASan + UBSan in make test-asan). The fuzzing itself is `make fuzz` (clang).
if(TARGET ti_train)
  foreach(name zip pickle safetensors)
    ti_add_test(test_replay_${name} SOURCES fuzz/fuzz_${name}.c fuzz/replay_main.c LABELS cpu
                LIBS ti_train ARGS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${name})
    target_include_directories(test_replay_${name} PRIVATE ${PROJECT_SOURCE_DIR}/model/io)
  endforeach()
endif()
