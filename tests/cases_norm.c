/* cases_norm.c - op test cases of the norm family (see op_cases.h). */
#include "op_cases.h"

const struct op_case oc_cases_norm[] = {
    {NULL},
};
