/* Errors travel as a message in a caller-owned buffer: every fallible call
 * returns 0 on success or -1 with the message set, naming the file or value
 * at fault, and leaves what the user owns untouched. */
#ifndef REAGE_ERRORS_H
#define REAGE_ERRORS_H
#include <stdarg.h>
#include <stdio.h>

typedef struct { char msg[512]; } Err;

static inline int err_set(Err *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
    }
    return -1;
}
#endif
