# tests/bf16_grad.cmake - the casts between bf16 and f32 (cpu/copy.c) that a bf16 UNet run
# makes (x_t, the context, an f32 residual stream), forward and backward, against their
# element-wise definition. Included by tests/CMakeLists.txt.
ti_add_test(test_copy_bf16 SOURCES test_copy_bf16.c LABELS cpu)
