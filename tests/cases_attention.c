/* cases_attention.c - op test cases of the attention family (see op_cases.h). */
#include "op_cases.h"

const struct op_case oc_cases_attention[] = {
    {NULL},
};
