/*
 * launchers.h - the CUDA kernel launchers, one forward and (when ops.def says BWD = 1) one
 * backward per op, declared extern "C" so cuda_backend.c (plain C) can fill the kernel
 * tables. Each launcher dispatches on the tensors' dtype (f32, f16, bf16) itself.
 * Shared between C and C++: keep to the common subset (no restrict, no compound literals).
 */
#ifndef TI_CUDA_LAUNCHERS_H
#define TI_CUDA_LAUNCHERS_H

#include "../backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TI_CUDA_BWD_DECL_1(name)                                                                   \
    ti_status cuda_##name##_backward(struct ti_kctx *k, const struct ti_##name##_args *a);
#define TI_CUDA_BWD_DECL_0(name)
#define TI_KOP(NAME, name, BWD)                                                                    \
    ti_status cuda_##name##_forward(struct ti_kctx *k, const struct ti_##name##_args *a);          \
    TI_CUDA_BWD_DECL_##BWD(name)
#define TI_FOP(NAME, name)
#include "../ops.def"
#undef TI_KOP
#undef TI_FOP

#ifdef __cplusplus
}
#endif
#endif /* TI_CUDA_LAUNCHERS_H */
