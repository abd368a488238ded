# tests/cuda_arch.cmake - the CUDA kernels carry the device code they were built for
# (tests/test_cuda_arch.c reads the fat binaries of the objects; no GPU or cuobjdump needed).
# Wanted: the configured CMAKE_CUDA_ARCHITECTURES, except when that value is nvcc's own default
# (CMake's help string "CUDA architectures": nobody chose it, ti's default did not apply), where
# ti's default sm_90 is wanted, so the test fails instead of accepting sm_75 kernels.
if(TI_CUDA)
  get_property(_ti_arch_help CACHE CMAKE_CUDA_ARCHITECTURES PROPERTY HELPSTRING)
  if(_ti_arch_help STREQUAL "CUDA architectures" OR NOT CMAKE_CUDA_ARCHITECTURES)
    set(_ti_arch_want 90)
  else()
    set(_ti_arch_want "${CMAKE_CUDA_ARCHITECTURES}")
  endif()
  string(REPLACE ";" "," _ti_arch_want "${_ti_arch_want}")
  ti_add_test(test_cuda_arch SOURCES test_cuda_arch.c LABELS cpu
              ARGS "${_ti_arch_want}" "$<TARGET_OBJECTS:ti_cuda_kernels>")
endif()
