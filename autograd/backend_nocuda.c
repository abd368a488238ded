/* backend_nocuda.c - the CUDA entry points of a CPU-only build (TI_CUDA=OFF). */
#include "backend.h"

int ti_cuda_device_count(void) {
    return 0;
}

ti_status ti_backend_cuda(const struct ti_backend **out, int index, struct ti_err *err) {
    (void)index;
    *out = NULL;
    return ti_error(err, TI_ERR_UNSUPPORTED,
                    "this ti was built without CUDA (reconfigure with -DTI_CUDA=ON and nvcc)");
}
