# tests/pretrain.cmake - ti-pretrain (train/ti_pretrain.c, train/pretrain.c): AdamW over weight
# tables against torch's formula, and a short prefix of the shipped model's recipe
# (scripts/pretrain_tiny.sh) reproducing the first logged losses of models/tiny-sd/log_*.csv.
if(TARGET ti_data AND ZLIB_FOUND AND TI_HAVE_YAML)
  ti_add_test(test_pretrain SOURCES test_pretrain.c LABELS cpu LIBS ti_train
              ARGS $<TARGET_FILE:ti-pretrain> TIMEOUT 300)
  add_dependencies(test_pretrain ti-pretrain)
else()
  ti_skip_test(test_pretrain cpu "needs data/ (stb), zlib (the CLIP vocabulary) and libyaml (configs)")
endif()
