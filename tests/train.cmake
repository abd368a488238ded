# tests/train.cmake - ti-train (train/ti_train.c and its library parts train/cli.c,
# train/run_log.c, train/metrics.c).
# test_train_cli: the command line, config assembly, LR, run-folder names, the checkpoint and
# image schedule, the saved configs and metrics.h5/.csv (no model needed).
ti_add_test(test_train_cli SOURCES test_train_cli.c LABELS cpu LIBS ti_train)
