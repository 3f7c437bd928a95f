/* An OCI image layout's index.json (lib/oci/layout.c), as `push --oci DIR`
 * or a layout handed over by someone else presents it: resolving a name or a
 * digest in it. The layout lives in a temporary directory removed at exit. */
#include "fuzz.h"
#include "substrate/layout.h"
#include <fcntl.h>
#include <unistd.h>

static char dir[256];
static char index_path[320];

static void cleanup(void) {
    char p[320];
    unlink(index_path);
    snprintf(p, sizeof p, "%s/oci-layout", dir);
    unlink(p);
    rmdir(dir);
}

static void put(const char *path, const void *data, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || close(fd) < 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        /* under $TMPDIR: tests/fuzz/replay points it at a directory it
         * removes, so a crash (no atexit) leaves nothing behind */
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/substrate-fuzz-layout.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) abort();
        atexit(cleanup);
        char p[320];
        snprintf(p, sizeof p, "%s/oci-layout", dir);
        put(p, "{\"imageLayoutVersion\":\"1.0.0\"}", 30);
        snprintf(index_path, sizeof index_path, "%s/index.json", dir);
    }
    put(index_path, data, size);
    static const char *const names[] = {"1", "latest", FUZZ_IMAGE_DIGEST};
    for (size_t i = 0; i < 3; i++) {
        char dg[SUB_DIGEST_MAX] = "";
        char *mt = NULL;
        uint64_t sz = 0;
        sub_err e = {0};
        int r = sub_layout_resolve(dir, names[i], dg, &mt, &sz, &e);
        fuzz_check_err(&e);
        if (r == 0) {
            FUZZ_ASSERT(sub_digest_validate(dg, &e) == 0);
            FUZZ_ASSERT(mt != NULL);
            if (i == 2) FUZZ_ASSERT(!strcmp(dg, FUZZ_IMAGE_DIGEST));
        } else {
            FUZZ_ASSERT(mt == NULL);
        }
        free(mt);
    }
    return 0;
}
