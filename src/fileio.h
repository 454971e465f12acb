/* The thin platform layer: whole-file reads and atomic writes. Everything
 * above it works on memory buffers, so the same code runs in WebAssembly. */
#ifndef REAGE_FILEIO_H
#define REAGE_FILEIO_H
#include <stddef.h>
#include <stdint.h>
#include "errors.h"

/* Reads a whole file (refusing ones larger than max_bytes); caller frees. */
int file_read_all(const char *path, size_t max_bytes, uint8_t **buf, size_t *len, Err *e);
/* Writes to "<path>.tmp" then renames over path, so that a crash mid-write
 * never leaves a half-written file where a good one was. */
int file_write_atomic(const char *path, const void *buf, size_t len, Err *e);
int dir_ensure(const char *path, Err *e);
/* Keeps freed memory mapped: the BLAS allocates its packing buffers on every
 * call, and a fresh page costs ~11 us to fault in (measured on a 2-core VM). Call once
 * at the start of a native program. */
void memory_keep_freed(void);
#endif
