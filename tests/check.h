/* A tiny test harness: CHECK records a pass or a failure with a message;
 * the runner prints "N passed, N failed" and exits non-zero on failure. */
#ifndef REAGE_CHECK_H
#define REAGE_CHECK_H
#include <stdio.h>

extern int checks_passed, checks_failed;
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) checks_passed++;                                         \
        else {                                                             \
            checks_failed++;                                               \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
        }                                                                  \
    } while (0)
#endif
