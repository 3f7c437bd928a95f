/* TAP runner for the unit tests: `unit-tests [name-substring...]`. */
#include "unit.h"
#include "substrate/fs.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    const char *name;
    unit_fn fn;
} unit_case;

static unit_case cases[512];
static size_t ncases;
static int cur_failed;
static const char *cur_skip;
static char *cur_tmp;
/* parts of the current test skipped (unit_skip_part): one SKIP point each */
static const char *part_what[8], *part_why[8];
static size_t nparts;

void unit_register(const char *name, unit_fn fn) {
    if (ncases >= ARRAY_SIZE(cases)) abort();
    cases[ncases++] = (unit_case){name, fn};
}

void unit_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("# %s:%d: ", file, line);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    cur_failed++;
}

void unit_skip(const char *reason) { cur_skip = reason; }

void unit_skip_part(const char *what, const char *reason) {
    if (nparts >= ARRAY_SIZE(part_what)) abort();
    part_what[nparts] = what;
    part_why[nparts++] = reason;
}

static const char *top(void) {
    const char *t = getenv("SUBSTRATE_TOP");
    return t ? t : ".";
}

char *unit_src(const char *rel) { return xasprintf("%s/%s", top(), rel); }

/* Copies of ../shared (cosign vectors, OCI schemas) live in tests/fixtures so a
 * clean clone is self-contained. */
char *unit_shared(const char *rel) {
    if (str_has_prefix(rel, "vectors/")) return xasprintf("%s/tests/fixtures/%s", top(), rel + 8);
    return xasprintf("%s/tests/fixtures/%s", top(), rel);
}

char *unit_read_shared(const char *rel, size_t *len) {
    _cleanup_free_ char *p = unit_shared(rel);
    char *d = NULL;
    size_t n = 0;
    sub_err e = {0};
    if (sub_read_file(p, 1 << 20, &d, &n, &e) < 0) {
        unit_fail(__FILE__, __LINE__, "%s", e.msg);
        d = xstrdup("");
        n = 0;
    }
    if (len) *len = n;
    return d;
}

char *unit_read_shared_line(const char *rel) {
    char *s = unit_read_shared(rel, NULL);
    s[strcspn(s, "\r\n")] = 0;
    return s;
}

const char *unit_tmpdir(void) {
    if (!cur_tmp) {
        sub_err e = {0};
        const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        if (sub_mkdtemp(base, "substrate-unit-", &cur_tmp, &e) < 0) {
            fprintf(stderr, "%s\n", e.msg);
            abort();
        }
    }
    return cur_tmp;
}

static int compare(const void *a, const void *b) {
    return strcmp(((const unit_case *)a)->name, ((const unit_case *)b)->name);
}

int main(int argc, char **argv) {
    qsort(cases, ncases, sizeof cases[0], compare);
    size_t n = 0, failed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < ncases; i++) {
        bool sel = argc < 2;
        for (int a = 1; a < argc; a++)
            if (strstr(cases[i].name, argv[a])) sel = true;
        if (!sel) continue;
        cur_failed = 0;
        cur_skip = NULL;
        nparts = 0;
        cases[i].fn();
        n++;
        /* a skip never hides checks that already failed */
        if (cur_failed) {
            if (cur_skip) printf("# (it then asked to skip: %s)\n", cur_skip);
            printf("not ok %zu - %s\n", n, cases[i].name);
            failed++;
        } else if (cur_skip) printf("ok %zu - %s # SKIP %s\n", n, cases[i].name, cur_skip);
        else printf("ok %zu - %s\n", n, cases[i].name);
        for (size_t k = 0; k < nparts; k++)
            printf("ok %zu - %s: %s # SKIP %s\n", ++n, cases[i].name, part_what[k], part_why[k]);
        if (cur_tmp) {
            if (!getenv("UNIT_KEEP")) sub_rm_rf(cur_tmp, NULL);
            free(cur_tmp);
            cur_tmp = NULL;
        }
    }
    printf("1..%zu\n", n);
    return failed ? 1 : 0;
}
