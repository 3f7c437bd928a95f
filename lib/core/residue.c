/* Removal of temporary files and directories on interruption, and the sweep
 * of leftovers of dead processes. See residue.h for the contract. */
#include "substrate/residue.h"
#include "substrate/fs.h"
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEPTH 48

enum { SLOT_FREE = 0, SLOT_CLAIMED = 1, SLOT_USED = 2 };

static struct {
    int state;
    char path[PATH_MAX];
} slots[SUB_RESIDUE_SLOTS];
static pid_t children[SUB_RESIDUE_CHILDREN];
static pid_t owner;       /* the process that installed the handler (not a forked child) */
static int cleaning;      /* set once the handler has started */
static const int handled[] = {SIGINT, SIGTERM, SIGHUP};

/* ---- the table ---------------------------------------------------------------------------- */

bool sub_residue_add(const char *path) {
    if (!path || strlen(path) >= PATH_MAX) return false;
    for (size_t i = 0; i < SUB_RESIDUE_SLOTS; i++) {
        int expect = SLOT_FREE;
        if (!__atomic_compare_exchange_n(&slots[i].state, &expect, SLOT_CLAIMED, false,
                                         __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            continue;
        memcpy(slots[i].path, path, strlen(path) + 1);
        __atomic_store_n(&slots[i].state, SLOT_USED, __ATOMIC_RELEASE);
        return true;
    }
    return false;
}

void sub_residue_forget(const char *path) {
    if (!path) return;
    for (size_t i = 0; i < SUB_RESIDUE_SLOTS; i++)
        if (__atomic_load_n(&slots[i].state, __ATOMIC_ACQUIRE) == SLOT_USED &&
            strcmp(slots[i].path, path) == 0) {
            __atomic_store_n(&slots[i].state, SLOT_FREE, __ATOMIC_RELEASE);
            return;
        }
}

void sub_residue_add_child(pid_t pid) {
    for (size_t i = 0; i < SUB_RESIDUE_CHILDREN; i++) {
        pid_t expect = 0;
        if (__atomic_compare_exchange_n(&children[i], &expect, pid, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            return;
    }
}

void sub_residue_forget_child(pid_t pid) {
    for (size_t i = 0; i < SUB_RESIDUE_CHILDREN; i++) {
        pid_t expect = pid;
        if (__atomic_compare_exchange_n(&children[i], &expect, 0, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            return;
    }
}

/* ---- async-signal-safe removal ------------------------------------------------------------ */

/* Remove name (relative to dirfd) and, for a directory, everything below it,
 * staying on device dev (0: take the device of name itself). Only
 * async-signal-safe calls; nothing is allocated. */
static void rm_at(int dirfd, const char *name, dev_t dev, int depth) {
    if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return;
    if (errno != EISDIR || depth > MAX_DEPTH) return;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) < 0 || (dev && st.st_dev != dev)) { /* a mount point: leave it */
        close(fd);
        return;
    }
    for (int pass = 0; pass < 4; pass++) {
        char buf[2048] __attribute__((aligned(8)));
        ssize_t n;
        while ((n = getdents64(fd, buf, sizeof buf)) > 0) {
            for (ssize_t off = 0; off < n;) {
                struct dirent64 *d = (struct dirent64 *)(void *)(buf + off);
                off += d->d_reclen;
                if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..")) continue;
                rm_at(fd, d->d_name, st.st_dev, depth + 1);
            }
        }
        if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno != ENOTEMPTY) break;
        lseek(fd, 0, SEEK_SET); /* entries moved while we read: once more */
    }
    close(fd);
}

static void stop_children(int sig) {
    for (size_t i = 0; i < SUB_RESIDUE_CHILDREN; i++) {
        pid_t p = __atomic_load_n(&children[i], __ATOMIC_ACQUIRE);
        if (p > 0) kill(p, sig);
    }
    /* up to 2 s for them to go, then SIGKILL: they write into what we remove */
    for (size_t i = 0; i < SUB_RESIDUE_CHILDREN; i++) {
        pid_t p = __atomic_load_n(&children[i], __ATOMIC_ACQUIRE);
        if (p <= 0) continue;
        int gone = 0;
        for (int t = 0; t < 100 && !gone; t++) {
            pid_t w = waitpid(p, NULL, WNOHANG);
            if (w == p || (w < 0 && errno != EINTR)) gone = 1;
            else {
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        if (!gone) {
            kill(p, SIGKILL);
            while (waitpid(p, NULL, 0) < 0 && errno == EINTR) {
            }
        }
    }
}

static void die_of(int sig) {
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    sigprocmask(SIG_UNBLOCK, &s, NULL);
    raise(sig);
    _exit(128 + sig); /* not reached */
}

static void on_signal(int sig) {
    int saved = errno;
    if (getpid() != owner) die_of(sig); /* a forked child before exec: not ours to clean */
    if (__atomic_exchange_n(&cleaning, 1, __ATOMIC_ACQ_REL)) {
        errno = saved; /* another thread is cleaning up and will re-raise */
        return;
    }
    stop_children(sig);
    for (size_t i = 0; i < SUB_RESIDUE_SLOTS; i++)
        if (__atomic_load_n(&slots[i].state, __ATOMIC_ACQUIRE) == SLOT_USED)
            rm_at(AT_FDCWD, slots[i].path, 0, 0);
    die_of(sig);
}

void sub_residue_install(void) {
    if (owner == getpid()) return;
    owner = getpid();
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < ARRAY_SIZE(handled); i++) sigaddset(&sa.sa_mask, handled[i]);
    for (size_t i = 0; i < ARRAY_SIZE(handled); i++) {
        struct sigaction old;
        /* an ignored signal (nohup) stays ignored */
        if (sigaction(handled[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(handled[i], &sa, NULL);
    }
}

/* ---- named temporaries ---------------------------------------------------------------------- */

int sub_residue_mkstemp(const char *base, char **out, sub_err *e) {
    char *t = xasprintf("%s%d-XXXXXX", base, (int)getpid());
    int fd = mkostemp(t, O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        free(t);
        return sub_err_set(e, -err, "cannot create a temporary file %s…: %s%s", base,
                           strerror(err), sub_io_hint(err));
    }
    sub_residue_add(t);
    *out = t;
    return fd;
}

int sub_residue_mkdtemp(const char *parent, const char *prefix, char **out, sub_err *e) {
    _cleanup_free_ char *p = xasprintf("%s%d-", prefix, (int)getpid());
    int r = sub_mkdtemp(parent, p, out, e);
    if (r < 0) return r;
    sub_residue_add(*out);
    return 0;
}

void sub_residue_remove(const char *path) {
    if (!path) return;
    sub_rm_rf(path, NULL);
    sub_residue_forget(path);
}

/* ---- the sweep ---------------------------------------------------------------------------- */

pid_t sub_residue_name_pid(const char *name, const char *marker) {
    const char *p = strstr(name, marker);
    if (!p) return -1;
    p += strlen(marker);
    long v = 0;
    const char *q = p;
    while (*q >= '0' && *q <= '9' && q - p < 10) v = v * 10 + (*q++ - '0');
    if (q == p || *q != '-' || v <= 0 || v > INT_MAX) return -1;
    return (pid_t)v;
}

static bool pid_alive(pid_t pid) { return kill(pid, 0) == 0 || errno != ESRCH; }

int sub_residue_sweep(const char *dir, const char *marker, sub_err *e) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        return sub_err_set(e, -errno, "cannot read %s: %m", dir);
    }
    int n = 0, r = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        pid_t pid = sub_residue_name_pid(de->d_name, marker);
        if (pid <= 0 || pid == getpid() || pid_alive(pid)) continue;
        _cleanup_free_ char *p = sub_path_join(dir, de->d_name);
        sub_err re = {0};
        if (sub_rm_rf(p, &re) < 0) {
            if (!r) r = sub_err_set(e, re.code, "cannot remove the leftover %s of process %d: %s",
                                    p, (int)pid, re.msg);
            continue;
        }
        n++;
    }
    closedir(d);
    return r < 0 ? r : n;
}
