# tests/ops_norm.cmake - tests of the norm op family beyond the shared op-case table
# (cases_norm.c): accuracy of the vectorised f32 exp / normal CDF (cpu/vmath.h), bitwise
# independence of the thread count, argument validation, no leaked statistics.
# Included by tests/CMakeLists.txt.
ti_add_test(test_ops_norm SOURCES test_ops_norm.c LABELS cpu)
