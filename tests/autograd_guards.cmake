# tests/autograd_guards.cmake - guards of the autograd engine (tests/test_autograd_guards.c):
# kept-tensor overflow, checkpoint re-run errors, frozen weights skipping their weight-gradient
# GEMM, backend tables under concurrent first use (CPU; CUDA in the _cuda variant, SKIP without
# a GPU).
ti_add_test(test_autograd_guards SOURCES test_autograd_guards.c LABELS cpu)
ti_add_test(test_autograd_guards_cuda SOURCES test_autograd_guards.c LABELS cuda ARGS cuda)
