/* cases_misc.c - op test cases of the misc family (see op_cases.h). */
#include "op_cases.h"

const struct op_case oc_cases_misc[] = {
    {NULL},
};
