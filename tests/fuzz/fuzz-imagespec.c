/* Image specs, platform/images/<name>/image.json (lib/image/imagespec.c),
 * read through a memfd so the real file-reading path runs. */
#include "fuzz.h"
#include "substrate/imagespec.h"
#include <sys/mman.h>
#include <unistd.h>

static int fd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fd < 0) {
        fd = memfd_create("image.json", MFD_CLOEXEC);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) < 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) abort();
    sub_imagespec s;
    sub_err e = {0};
    int r = sub_imagespec_load(path, NULL, &s, &e);
    fuzz_check_err(&e);
    if (r < 0) return 0;
    FUZZ_ASSERT(sub_image_name_validate(s.name, &e) == 0);
    FUZZ_ASSERT(s.label_keys && s.label_values);
    FUZZ_ASSERT(strv_len(s.label_keys) == strv_len(s.label_values));
    for (size_t i = 0; i < s.n_files; i++) {
        FUZZ_ASSERT(s.files[i].to && s.files[i].to[0] == '/');
        FUZZ_ASSERT(s.files[i].mode <= 07777);
    }
    for (size_t i = 0; i < s.n_dirs; i++) FUZZ_ASSERT(s.dirs[i].path[0] == '/');
    for (size_t i = 0; i < s.n_links; i++) FUZZ_ASSERT(s.links[i].path[0] == '/');
    /* a spec names its own directory */
    sub_imagespec again;
    FUZZ_ASSERT(sub_imagespec_load(path, s.name, &again, &e) == 0);
    sub_imagespec_free(&again);
    sub_imagespec_free(&s);
    return 0;
}
