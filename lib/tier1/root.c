/* The root supervisor: keeps one supervisor per reconciled service alive
 * (s6-svscan's job). It tells a dead service supervisor by its lock: free
 * lock = nobody supervises. So it also finds the supervisors it did not start
 * itself (after it was killed and restarted), and never starts two. */
#include "substrate/fs.h"
#include "substrate/proc.h"
#include "t1-internal.h"
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROOT_SCAN_MS 250
#define ROOT_MAX_SERVICES 512

typedef struct known {
    char name[SUB_SVC_NAME_MAX + 1];
    int64_t last_spawn;
} known;

static bool wants_supervisor(const char *name, bool boot) {
    _cleanup_json_ json_t *st = NULL;
    _cleanup_free_ char *desired = sub_t1_svc_path(name, "desired.json");
    if (t1_read_json(name, "state.json", &st, NULL) == 0 && st) {
        const char *status = json_string_value(json_object_get(st, "status"));
        if (streq(status, "stopped")) return false;
        (void)boot;
        return true;
    }
    return sub_path_exists(desired); /* reconciled, its supervisor not yet up */
}

/* Start argv with stdin from /dev/null and its output appended to
 * tier1/supervise.log; detach: in a session of its own. */
static int spawn_logged(char *const argv[], bool detach, sub_err *e) {
    _cleanup_free_ char *log = sub_t1_path("supervise.log");
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    sub_proc_opts o = SUB_PROC_OPTS_INIT;
    o.stdin_fd = SUB_FD_NULL;
    o.stdout_fd = fd >= 0 ? fd : SUB_FD_NULL;
    o.stderr_fd = fd >= 0 ? fd : SUB_FD_NULL;
    o.new_session = detach;
    pid_t pid;
    int r = sub_spawn(argv, &o, &pid, e);
    if (fd >= 0) close(fd);
    return r;
}

static int spawn_supervisor(const char *self, const char *name, bool detach, sub_err *e) {
    char *argv[] = {(char *)self, "supervise", "--service", (char *)name, NULL};
    return spawn_logged(argv, detach, e);
}

static void self_path(char *buf, size_t n) {
    ssize_t k = readlink("/proc/self/exe", buf, n - 1);
    if (k > 0) buf[k] = 0;
    else snprintf(buf, n, "/proc/self/exe");
}

int t1_ensure_service_supervisor(const char *name, const char *self_exe, sub_err *e) {
    _cleanup_free_ char *lock = sub_t1_svc_path(name, "lock");
    if (t1_lock_held(lock)) return 0;
    /* Started here rather than waiting for the root's next scan; a second
     * one (the root's) finds the lock taken and exits. */
    char self[4096];
    self_path(self, sizeof self);
    return spawn_supervisor(self_exe ? self_exe : self, name, true, e);
}

static known *find_known(known *k, size_t *n, const char *name) {
    for (size_t i = 0; i < *n; i++)
        if (streq(k[i].name, name)) return &k[i];
    if (*n >= ROOT_MAX_SERVICES) return NULL;
    known *x = &k[(*n)++];
    snprintf(x->name, sizeof x->name, "%.63s", name);
    x->last_spawn = INT64_MIN / 2;
    return x;
}

static void scan(const char *self, bool boot, known *k, size_t *nk) {
    _cleanup_free_ char *dir = sub_t1_path("services");
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || strlen(de->d_name) > SUB_SVC_NAME_MAX) continue;
        if (!wants_supervisor(de->d_name, boot)) continue;
        _cleanup_free_ char *lock = sub_t1_svc_path(de->d_name, "lock");
        if (t1_lock_held(lock)) continue;
        known *x = find_known(k, nk, de->d_name);
        if (!x || t1_now_ms() - x->last_spawn < T1_RESTART_MIN_MS) continue;
        x->last_spawn = t1_now_ms();
        (void)spawn_supervisor(self, de->d_name, false, NULL);
    }
    closedir(d);
}

int sub_t1_root_run(bool boot, const char *self_exe, sub_err *e) {
    _cleanup_free_ char *services = sub_t1_path("services");
    int r = sub_mkdir_p(services, 0755, e);
    if (r < 0) return r;
    _cleanup_free_ char *lockp = sub_t1_path("root.lock");
    _cleanup_close_ int lock = t1_trylock(lockp, e);
    if (lock == -EWOULDBLOCK) {
        lock = -1;
        sub_err_set(e, 0, "a root supervisor already runs for %s", services);
        if (e) e->code = 0;
        return 0;
    }
    if (lock < 0) return lock;
    _cleanup_free_ char *pidp = sub_t1_path("root.pid");
    char pidtxt[32];
    snprintf(pidtxt, sizeof pidtxt, "%d\n", (int)getpid());
    (void)sub_write_file_atomic(pidp, pidtxt, strlen(pidtxt), 0644, NULL);
    _cleanup_close_ int sfd = t1_signalfd(e);
    if (sfd < 0) return sfd;
    char buf[4096];
    self_path(buf, sizeof buf);
    const char *self = self_exe ? self_exe : buf;
    known *k = xcalloc(ROOT_MAX_SERVICES, sizeof *k);
    size_t nk = 0;
    bool quit = false;
    while (!quit) {
        scan(self, boot, k, &nk);
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        int n = poll(&p, 1, ROOT_SCAN_MS);
        if (n > 0) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo != SIGCHLD) quit = true;
            }
        }
        while (waitpid(-1, NULL, WNOHANG) > 0) { /* supervisors, and orphaned container inits */
        }
    }
    free(k);
    unlink(pidp);
    return 0;
}

int sub_t1_ensure_root(const char *self_exe, sub_err *e) {
    _cleanup_free_ char *dir = sub_t1_path(NULL);
    int r = sub_mkdir_p(dir, 0755, e);
    if (r < 0) return r;
    _cleanup_free_ char *lockp = sub_t1_path("root.lock");
    if (t1_lock_held(lockp)) return 0;
    char self[4096]; /* by its real path, so ps shows what runs */
    self_path(self, sizeof self);
    char *argv[] = {(char *)(self_exe ? self_exe : self), "supervise", NULL};
    r = spawn_logged(argv, true, e);
    if (r < 0) return r;
    _cleanup_free_ char *log = sub_t1_path("supervise.log");
    for (int i = 0; i < 200 && !t1_lock_held(lockp); i++) t1_sleep_ms(10);
    if (!t1_lock_held(lockp))
        return sub_err_setk(e, SUB_KIND_ENV, -EIO, "the root supervisor did not start; see %s", log);
    return 0;
}

int sub_t1_root_stop(sub_err *e) {
    _cleanup_free_ char *lockp = sub_t1_path("root.lock");
    _cleanup_free_ char *pidp = sub_t1_path("root.pid");
    if (!t1_lock_held(lockp)) return 0;
    _cleanup_free_ char *txt = NULL;
    size_t len;
    int r = sub_read_file(pidp, 64, &txt, &len, e);
    if (r < 0) return r;
    pid_t pid = (pid_t)atoi(txt);
    if (pid <= 1) return sub_err_setk(e, SUB_KIND_ENV, -EINVAL, "%s holds no pid", pidp);
    if (kill(pid, SIGTERM) < 0 && errno != ESRCH)
        return sub_err_setk(e, SUB_KIND_ENV, -errno, "signalling the root supervisor (pid %d): %m", (int)pid);
    for (int i = 0; i < 500 && t1_lock_held(lockp); i++) t1_sleep_ms(10);
    if (t1_lock_held(lockp))
        return sub_err_setk(e, SUB_KIND_ENV, -ETIMEDOUT, "the root supervisor (pid %d) did not exit", (int)pid);
    return 1;
}

char *sub_t1_render_systemd(const char *bin, const char *state_dir) {
    return xasprintf("# Generated by `substrate reconcile --render systemd`.\n"
                     "[Unit]\n"
                     "Description=Substrate Tier-1 supervisor (every reconciled service under %s)\n"
                     "After=network-online.target\n"
                     "Wants=network-online.target\n"
                     "\n"
                     "[Service]\n"
                     "Type=simple\n"
                     "Environment=SUBSTRATE_STATE=%s\n"
                     "ExecStart=%s supervise --boot\n"
                     "Restart=always\n"
                     "RestartSec=1\n"
                     "Delegate=yes\n"
                     "KillMode=mixed\n"
                     "TimeoutStopSec=30\n"
                     "\n"
                     "[Install]\n"
                     "WantedBy=multi-user.target\n",
                     state_dir, state_dir, bin);
}
