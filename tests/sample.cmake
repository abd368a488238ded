# Sampling: PyTorch's CPU generator, the diffusion schedule, DDIM/PLMS samplers, ti-sample.
if(HDF5_FOUND)
  ti_add_test(test_torch_gen SOURCES test_torch_gen.c LABELS cpu LIBS ti_h5util)
else()
  ti_skip_test(test_torch_gen cpu "built without HDF5 (libhdf5-dev): cannot read the fixtures")
endif()
