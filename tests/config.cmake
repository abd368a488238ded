# tests/config.cmake - YAML trees and the peer's configs (model/yaml_tree.c, model/config.c).
# Runs with the repository root as working directory: it walks configs/.
ti_add_test(test_config SOURCES test_config.c LABELS cpu LIBS ti_model)
