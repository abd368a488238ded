# tests/cpu_speed.cmake - the CPU backend's kernel choice (cpu_info.h: features, OpenBLAS core,
# oneDNN) and the oneDNN convolutions' frozen-weight cache (cpu/dnnl_conv.c). Included by
# tests/CMakeLists.txt.
ti_add_test(test_cpu_speed SOURCES test_cpu_speed.c LABELS cpu)
