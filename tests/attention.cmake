# tests/attention.cmake - the attention op's own checks (included by tests/CMakeLists.txt):
# the f32 fast exp against expf, and the blocked CPU kernels against a naive reference at sizes
# that span several query blocks, with 1-3 threads.
ti_add_test(test_attention SOURCES test_attention.c LABELS cpu TIMEOUT 900)
