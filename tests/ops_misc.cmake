# tests/ops_misc.cmake - tests of the misc op family beyond the shared op-case table
# (cases_misc.c): argument validation, out-of-range embedding indices (CPU; CUDA in
# test_ops_misc_cuda), the frozen-table rule, scalar MSE seeding. Included by
# tests/CMakeLists.txt.
ti_add_test(test_ops_misc SOURCES test_ops_misc.c LABELS cpu)
# The CUDA half (the device's bad-index flag): SKIP (77) without a GPU.
ti_add_test(test_ops_misc_cuda SOURCES test_ops_misc.c LABELS cuda ARGS cuda)
