/*
 * data_err.h - the error record of every data/ function (data/ stands alone: no ti_status).
 *
 * Every data/ function returns 0 on success and -1 on error, with a message in e->msg that
 * names the file, argument or limit and what was expected.
 */
#ifndef TI_DATA_ERR_H
#define TI_DATA_ERR_H

struct ti_data_err {
    char msg[512];
};

#endif
