/* What dead runners left: job dirs whose lock no runner holds (tier2.h). */
#include "t2-internal.h"
#include "substrate/fs.h"
#include "substrate/jail.h"
#include "substrate/json.h"
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One stale job: its processes and cgroups (by the id's cgroup name), then
 * its dir; the audit counts what is still there. */
static json_t *sweep_one(const char *jobs, const char *name) {
    const char *id = strncmp(name, ".new-", 5) ? name : name + 5;
    _cleanup_free_ char *dir = sub_path_join(jobs, name);
    _cleanup_free_ char *rec = sub_path_join(dir, "job.json");
    _cleanup_json_ json_t *j = NULL;
    uid_t uid = 0;
    if (sub_json_load_file(rec, 4096, &j, NULL) == 0) uid = (uid_t)json_integer_value(json_object_get(j, "uid"));
    int killed = 0;
    _cleanup_strv_ char **cgroups = NULL;
    (void)sub_jail_cleanup_id(id, &killed, &cgroups, NULL);
    (void)sub_rm_rf(dir, NULL);
    json_t *checks = json_array();
    int residual = 0;
    int cg = 0;
    for (char **c = cgroups; c && *c; c++) cg += sub_path_exists(*c);
    pid_t first = 0;
    /* a VMM killed with its runner may still await its reaping by whoever
     * inherited it: give that a moment (bounded) before counting it */
    int up = 0;
    for (int i = 0; i < 60; i++) {
        up = uid ? sub_jail_uid_processes(uid, &first, NULL) : 0;
        if (up <= 0) break;
        usleep(50000);
    }
    int d = sub_path_exists(dir);
    /* its egress namespace, if it had one (named by the id's last 8 chars) */
    size_t il = strlen(id);
    int eg = il > 8 ? t2_egress_sweep(id + il - 8) : 0;
    json_array_append_new(checks, json_pack("{s:s,s:i}", "check", "uid_processes", "residual", up > 0 ? up : 0));
    json_array_append_new(checks, json_pack("{s:s,s:i}", "check", "cgroups", "residual", cg));
    json_array_append_new(checks, json_pack("{s:s,s:i}", "check", "job_dir", "residual", d));
    json_array_append_new(checks, json_pack("{s:s,s:i}", "check", "egress", "residual", eg));
    residual = (up > 0 ? up : 0) + cg + d + eg;
    return json_pack("{s:s,s:i,s:{s:o,s:i}}", "job_id", id, "processes_killed", killed, "teardown", "checks",
                     checks, "residual", residual);
}

int sub_job_sweep(json_t **swept, sub_err *e) {
    if (swept) *swept = NULL;
    _cleanup_free_ char *jobs = t2_path("jobs");
    DIR *d = opendir(jobs);
    if (!d) return errno == ENOENT ? 0 : sub_err_setk(e, SUB_KIND_ENV, -errno, "%s: %s", jobs, strerror(errno));
    json_t *arr = json_array();
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        /* ".new-<id>": being made (locked, then renamed); one left by a
         * runner killed right there is removed once no one holds its lock */
        if (de->d_name[0] == '.' && strncmp(de->d_name, ".new-", 5)) continue;
        _cleanup_free_ char *lock = xasprintf("%s/%s/lock", jobs, de->d_name);
        _cleanup_close_ int fd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        /* no lock file: a runner between mkdir and lock, or one that died
         * there; either way it has no VM yet. Only a lock we can take is stale. */
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) continue;
        struct stat st;
        if (de->d_name[0] == '.' && (fstat(fd, &st) < 0 || time(NULL) - st.st_mtime < 60)) continue;
        json_array_append_new(arr, sweep_one(jobs, de->d_name));
    }
    closedir(d);
    int n = (int)json_array_size(arr);
    if (swept) *swept = arr;
    else json_decref(arr);
    return n;
}
