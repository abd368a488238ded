# tests/ops_gemm.cmake - tests of the gemm op family beyond the shared op-case table
# (cases_gemm.c): the CPU conv2d fast paths (Winograd, shifted GEMM, chunked im2col) at sizes
# that need several workspace chunks, against a direct loop; argument validation.
# Included by tests/CMakeLists.txt.
ti_add_test(test_ops_gemm SOURCES test_ops_gemm.c LABELS cpu)
