# tests/bf16.cmake - the CPU backend's bf16 kernels (autograd/cpu/bf16.c): every op case of
# tests/cases_*.c in bf16 against the CPU in f64 within bf16 tolerances (test_backends'
# comparison), and a textual-inversion step in bf16 against f32. Included by tests/CMakeLists.txt.
ti_add_test(test_backends_cpu_bf16 SOURCES test_backends.c LABELS cpu ARGS --cpu-bf16 TIMEOUT 900)
if(TARGET ti_train AND TI_HAVE_YAML)
  ti_add_test(test_train_bf16 SOURCES test_train_bf16.c LABELS cpu LIBS ti_train TIMEOUT 600)
elseif(TARGET ti_train)
  ti_skip_test(test_train_bf16 cpu "built without libyaml: the tiny configs cannot load")
endif()
