/* cases_gemm.c - op test cases of the gemm family (see op_cases.h). */
#include "op_cases.h"

const struct op_case oc_cases_gemm[] = {
    {NULL},
};
