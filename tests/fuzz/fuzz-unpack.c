/* One image layer (lib/oci/unpack.c), as a registry or a layout handed over
 * by someone else presents it: the input is the blob, a tar, or a tar+gzip
 * when it starts with the gzip magic, unpacked into a fresh directory under
 * $TMPDIR with small caps. Whatever it holds: nothing appears beside that
 * directory, the tree holds no device, FIFO, socket or setuid/setgid file,
 * and a refusal is a well-formed error. */
#include "fuzz.h"
#include "substrate/digest.h"
#include "substrate/manifest.h"
#include "substrate/unpack.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];
static char blob[320];
static int dirfd_ = -1;

static void cleanup(void) {
    if (dirfd_ >= 0) {
        sub_rm_rf_at(dirfd_, "root", NULL);
        sub_rm_rf_at(dirfd_, "outside", NULL);
        close(dirfd_);
    }
    unlink(blob);
    rmdir(dir);
}

static void put(const char *path, const void *data, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || close(fd) < 0) abort();
}

static size_t count(int fd) {
    int d = dup(fd);
    DIR *dp = d >= 0 ? fdopendir(d) : NULL;
    FUZZ_ASSERT(dp != NULL);
    rewinddir(dp);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dp)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(dp);
    return n;
}

/* Nothing below fd that the unpacker promises never to make. */
static void check_tree(int fd, int depth) {
    FUZZ_ASSERT(depth <= SUB_UNPACK_MAX_DEPTH + 1);
    int d = dup(fd);
    DIR *dp = d >= 0 ? fdopendir(d) : NULL;
    FUZZ_ASSERT(dp != NULL);
    rewinddir(dp);
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        struct stat st;
        FUZZ_ASSERT(fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0);
        FUZZ_ASSERT(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode));
        FUZZ_ASSERT(S_ISLNK(st.st_mode) || !(st.st_mode & (S_ISUID | S_ISGID)));
        if (S_ISDIR(st.st_mode)) {
            int c = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            FUZZ_ASSERT(c >= 0);
            check_tree(c, depth + 1);
            close(c);
        }
    }
    closedir(dp);
}

/* A mutated tar header almost never has a valid checksum, and libarchive
 * stops there: give every 512-byte block that carries the ustar magic the
 * checksum of its bytes, so the mutations reach what follows the header. */
static void fix_checksums(uint8_t *b, size_t n) {
    for (size_t off = 0; off + 512 <= n; off += 512) {
        uint8_t *h = b + off;
        if (memcmp(h + 257, "ustar", 5)) continue;
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (size_t i = 0; i < 512; i++) sum += h[i];
        char ck[8];
        snprintf(ck, sizeof ck, "%06o", sum & 0777777);
        memcpy(h + 148, ck, 7); /* six digits, NUL; the space stays */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
    if (!dir[0]) {
        /* under $TMPDIR: tests/fuzz/replay points it at a directory it
         * removes, so a crash (no atexit) leaves nothing behind */
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/substrate-fuzz-unpack.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) abort();
        atexit(cleanup);
        dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd_ < 0 || mkdirat(dirfd_, "outside", 0755) < 0) abort();
        snprintf(blob, sizeof blob, "%s/blob", dir);
    }
    uint8_t *data = xmalloc(size ? size : 1);
    if (size) memcpy(data, in, size);
    bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    if (!gz) fix_checksums(data, size);
    put(blob, data, size);
    char dg[SUB_DIGEST_MAX];
    sub_err e = {0};
    if (sub_sha256_buf(data, size, dg, &e) < 0) abort();
    free(data);
    if (mkdirat(dirfd_, "root", 0755) < 0) abort();
    int rootfd = openat(dirfd_, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    FUZZ_ASSERT(rootfd >= 0);
    sub_unpack_report rep = {.max_bytes = 8u << 20, .max_entries = 2048};
    int r = sub_unpack_layer(rootfd, blob, gz ? SUB_MT_OCI_LAYER_GZIP : SUB_MT_OCI_LAYER_TAR, dg,
                             size, NULL, &rep, &e);
    fuzz_check_err(&e);
    if (getenv("FUZZ_UNPACK_VERBOSE")) fprintf(stderr, "unpack: %d %s\n", r, e.msg);
    if (r < 0) {
        FUZZ_ASSERT(e.code == r && e.msg[0]);
        if (e.reason == SUB_R_HOSTILE_LAYER) FUZZ_ASSERT(e.kind == SUB_KIND_INPUT);
    } else {
        FUZZ_ASSERT(e.code == 0);
        FUZZ_ASSERT(rep.bytes <= rep.max_bytes && rep.entries <= rep.max_entries);
    }
    /* even a refused layer leaves only what is allowed in the tree */
    check_tree(rootfd, 0);
    close(rootfd);
    sub_unpack_report_done(&rep);
    FUZZ_ASSERT(sub_rm_rf_at(dirfd_, "root", &e) == 0);
    /* the blob and the untouched "outside" only */
    FUZZ_ASSERT(count(dirfd_) == 2);
    int o = openat(dirfd_, "outside", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    FUZZ_ASSERT(o >= 0 && count(o) == 0);
    close(o);
    return 0;
}
