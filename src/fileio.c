#define _POSIX_C_SOURCE 200809L
#include "fileio.h"
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int file_read_all(const char *path, size_t max_bytes, uint8_t **buf, size_t *len, Err *e) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return err_set(e, "%s: cannot seek", path); }
    long n = ftell(f);
    if (n < 0) { fclose(f); return err_set(e, "%s: cannot tell size", path); }
    if ((size_t)n > max_bytes) {
        fclose(f);
        return err_set(e, "%s: file is %ld bytes, more than the %zu allowed", path, n, max_bytes);
    }
    rewind(f);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (!b) { fclose(f); return err_set(e, "%s: out of memory for %ld bytes", path, n); }
    if (n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        fclose(f);
        return err_set(e, "%s: read error", path);
    }
    fclose(f);
    *buf = b;
    *len = (size_t)n;
    return 0;
}

int file_write_atomic(const char *path, const void *buf, size_t len, Err *e) {
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return err_set(e, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return err_set(e, "%s: cannot create: %s", tmp, strerror(errno));
    int ok = fwrite(buf, 1, len, f) == len;
    ok &= fflush(f) == 0;
    ok &= fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok) { remove(tmp); return err_set(e, "%s: write failed: %s", tmp, strerror(errno)); }
    if (rename(tmp, path) != 0) {
        int er = errno;
        remove(tmp);
        return err_set(e, "%s: cannot rename into place: %s", path, strerror(er));
    }
    return 0;
}

int dir_ensure(const char *path, Err *e) {
    struct stat st;
    if (stat(path, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : err_set(e, "%s: exists and is not a folder", path);
    if (mkdir(path, 0755) != 0) return err_set(e, "%s: cannot create folder: %s", path, strerror(errno));
    return 0;
}

void memory_keep_freed(void) {
#ifdef M_MMAP_THRESHOLD
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}
