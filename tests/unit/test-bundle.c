/* OCI runtime bundles: the config is a pure function of the manifest and the
 * image config (Kubernetes command/args rule, env merge, numeric users only,
 * no capabilities by default, private namespaces, a default-deny seccomp
 * allowlist), it validates against the runtime-spec schema, and runc runs it
 * on this machine with the isolation it promises. */
#include "substrate/bundle.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/proc.h"
#include "unit.h"
#include <glob.h>
#include <seccomp.h>
#include <sys/stat.h>

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define IMAGE "127.0.0.1:5000/substrate/hello@" DIGEST
#define ROOTFS "/var/lib/substrate/rootfs/abc/rootfs"

static char *img_entrypoint[] = {"/bin/hello", NULL};
static char *img_cmd[] = {"--port", "8080", NULL};
static char *img_env[] = {"PATH=/usr/bin:/bin", "LANG=C", "MODE=image", NULL};

/* A manifest as the parser would leave it (ref parsed); release with fx_done. */
static void fx_init(sub_svc_manifest *m, sub_image_config *c) {
    memset(m, 0, sizeof(*m));
    memset(c, 0, sizeof(*c));
    m->path = "/etc/substrate/hello.service.yaml";
    m->dir = "/etc/substrate";
    m->name = "hello";
    m->image = IMAGE;
    sub_err e = {0};
    if (sub_ref_parse(IMAGE, NULL, &m->ref, &e) < 0) unit_fail(__FILE__, __LINE__, "%s", e.msg);
    c->architecture = "amd64";
    c->os = "linux";
    c->entrypoint = img_entrypoint;
    c->cmd = img_cmd;
    c->env = img_env;
}
static void fx_done(sub_svc_manifest *m) { sub_ref_free(&m->ref); }

static int build(const sub_svc_manifest *m, const sub_image_config *c, json_t **out, sub_err *e) {
    sub_bundle_opts o = {.m = m, .image = c, .rootfs = ROOTFS, .cgroup_path = "/substrate/hello-3",
                         .generation = 3};
    *out = NULL;
    sub_err_clear(e);
    return sub_bundle_config(&o, out, e);
}

/* A member by dotted path ("process.user.uid"); NULL when absent. */
static json_t *at(json_t *j, const char *path) {
    _cleanup_free_ char *p = xstrdup(path);
    char *save = NULL;
    for (char *k = strtok_r(p, ".", &save); k && j; k = strtok_r(NULL, ".", &save))
        j = json_object_get(j, k);
    return j;
}

/* A string array joined by '|' (a failed check when it is not one). */
static char *joined(json_t *arr) {
    if (!json_is_array(arr)) return xstrdup("(not an array)");
    char *s = xstrdup("");
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it) {
        const char *v = json_is_string(it) ? json_string_value(it) : "?";
        char *n = xasprintf("%s%s%s", s, i ? "|" : "", v);
        free(s);
        s = n;
    }
    return s;
}

static char *args_of(const sub_svc_manifest *m, const sub_image_config *c) {
    _cleanup_json_ json_t *j = NULL;
    sub_err e;
    if (build(m, c, &j, &e) < 0) return xasprintf("error: %s", e.msg);
    return joined(at(j, "process.args"));
}

TEST(bundle_kubernetes_rule) {
    sub_svc_manifest m;
    sub_image_config c;
    fx_init(&m, &c);
    char *command[] = {"/bin/other", "-v", NULL};
    char *args[] = {"--port", "9090", NULL};
    char *empty[] = {NULL};
    char *s;
    /* neither: the image's entrypoint + cmd */
    CHECK_STREQ(s = args_of(&m, &c), "/bin/hello|--port|8080");
    free(s);
    /* command only: replaces the entrypoint, and the image's cmd is dropped */
    m.command = command;
    CHECK_STREQ(s = args_of(&m, &c), "/bin/other|-v");
    free(s);
    /* command and args */
    m.args = args;
    CHECK_STREQ(s = args_of(&m, &c), "/bin/other|-v|--port|9090");
    free(s);
    /* args only: the image's entrypoint with the manifest's args */
    m.command = NULL;
    CHECK_STREQ(s = args_of(&m, &c), "/bin/hello|--port|9090");
    free(s);
    /* an empty list counts as not given */
    m.command = empty;
    m.args = empty;
    CHECK_STREQ(s = args_of(&m, &c), "/bin/hello|--port|8080");
    free(s);
    /* an image with only a cmd runs its cmd */
    c.entrypoint = NULL;
    m.command = m.args = NULL;
    CHECK_STREQ(s = args_of(&m, &c), "--port|8080");
    free(s);
    /* nothing to run at all: refused, input class, naming the fix */
    c.cmd = NULL;
    json_t *j = NULL;
    sub_err e;
    CHECK_FAILS(build(&m, &c, &j, &e), -EINVAL);
    CHECK(j == NULL);
    CHECK(strstr(e.msg, "the image has no entrypoint or cmd and the manifest gives no command"));
    CHECK(strstr(e.msg, "hello"));
    CHECK_INT(e.kind, SUB_KIND_INPUT);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
    CHECK_REASON(&e, SUB_R_BAD_MANIFEST);
    /* args alone on such an image run as the program */
    m.args = args;
    CHECK_STREQ(s = args_of(&m, &c), "--port|9090");
    free(s);
    fx_done(&m);
}

TEST(bundle_env_merge) {
    sub_svc_manifest m;
    sub_image_config c;
    fx_init(&m, &c);
    char *env[] = {"MODE=manifest", "NEW=1", "LANG=en_US.UTF-8", "EMPTY=", NULL};
    m.env = env;
    _cleanup_json_ json_t *j = NULL;
    sub_err e;
    CHECK_OK(build(&m, &c, &j, &e), &e);
    _cleanup_free_ char *s = joined(at(j, "process.env"));
    /* image order, the manifest's values; then the new keys in the manifest's order */
    CHECK_STREQ(s, "PATH=/usr/bin:/bin|LANG=en_US.UTF-8|MODE=manifest|NEW=1|EMPTY=");

    /* a key that is a prefix of another is a different key */
    char *env2[] = {"MODE_X=1", "PATH=/opt/bin", NULL};
    m.env = env2;
    json_decref(j);
    CHECK_OK(build(&m, &c, &j, &e), &e);
    free(s);
    s = joined(at(j, "process.env"));
    CHECK_STREQ(s, "PATH=/opt/bin|LANG=C|MODE=image|MODE_X=1");

    /* no PATH anywhere: the engines' default one */
    c.env = NULL;
    m.env = NULL;
    json_decref(j);
    CHECK_OK(build(&m, &c, &j, &e), &e);
    free(s);
    s = joined(at(j, "process.env"));
    CHECK_STREQ(s, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");

    /* an entry that is not KEY=VALUE is refused */
    char *bad[] = {"JUSTAKEY", NULL};
    m.env = bad;
    json_decref(j);
    CHECK_FAILS(build(&m, &c, &j, &e), -EINVAL);
    CHECK(strstr(e.msg, "JUSTAKEY"));
    CHECK_INT(e.kind, SUB_KIND_INPUT);
    char *bad2[] = {"=x", NULL};
    m.env = bad2;
    CHECK_FAILS(build(&m, &c, &j, &e), -EINVAL);
    fx_done(&m);
}

/* uid:gid of the config for a manifest user and an image User, or -1:-1 when refused
 * (the message in *msg). */
static char *user_of(const char *muser, const char *iuser, sub_err *e) {
    sub_svc_manifest m;
    sub_image_config c;
    fx_init(&m, &c);
    m.user = (char *)muser;
    c.user = (char *)iuser;
    _cleanup_json_ json_t *j = NULL;
    char *r;
    if (build(&m, &c, &j, e) < 0)
        r = xstrdup("refused");
    else
        r = xasprintf("%lld:%lld", json_integer_value(at(j, "process.user.uid")),
                      json_integer_value(at(j, "process.user.gid")));
    fx_done(&m);
    return r;
}

TEST(bundle_user_numeric_only) {
    sub_err e;
    static const struct {
        const char *muser, *iuser, *want;
    } cases[] = {
        {"1000:2000", "33:33", "1000:2000"},   /* the manifest wins */
        {NULL, "33:44", "33:44"},              /* else the image's */
        {"1000", NULL, "1000:1000"},           /* a lone uid: gid = uid */
        {NULL, NULL, "0:0"},                   /* nothing: root */
        {NULL, "", "0:0"},                     /* an empty User: root */
        {"0:0", "nobody", "0:0"},              /* the image's name never consulted */
        {"4294967294:0", NULL, "4294967294:0"},
        {NULL, "nobody", "refused"},
        {"nobody", NULL, "refused"},
        {"1000:staff", NULL, "refused"},
        {"www-data:33", NULL, "refused"},
        {"-1", NULL, "refused"},
        {"4294967295", NULL, "refused"},       /* (uid_t)-1 */
        {"99999999999", NULL, "refused"},
        {"1000:", NULL, "refused"},
        {":1000", NULL, "refused"},
        {"1000:1000:1", NULL, "refused"},
        {" 1000", NULL, "refused"},
        {"+1000", NULL, "refused"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        _cleanup_free_ char *got = user_of(cases[i].muser, cases[i].iuser, &e);
        if (strcmp(got, cases[i].want) != 0)
            unit_fail(__FILE__, __LINE__, "user %s / image %s: got %s, want %s",
                      cases[i].muser ? cases[i].muser : "(none)",
                      cases[i].iuser ? cases[i].iuser : "(none)", got, cases[i].want);
        if (streq(got, "refused")) {
            CHECK_INT(e.code, -EINVAL);
            CHECK_INT(e.kind, SUB_KIND_INPUT);
            CHECK(strstr(e.msg, "use numbers"));
        }
    }
    _cleanup_free_ char *r = user_of(NULL, "nobody", &e);
    CHECK(strstr(e.msg, "the image's User \"nobody\""));
    free(r);
    r = user_of("nobody", NULL, &e);
    CHECK(strstr(e.msg, "the manifest's user \"nobody\""));
}

TEST(bundle_cwd) {
    sub_svc_manifest m;
    sub_image_config c;
    fx_init(&m, &c);
    _cleanup_json_ json_t *j = NULL;
    sub_err e;
    CHECK_OK(build(&m, &c, &j, &e), &e);
    CHECK_STREQ(json_string_value(at(j, "process.cwd")), "/");
    json_decref(j);
    c.working_dir = "/srv";
    CHECK_OK(build(&m, &c, &j, &e), &e);
    CHECK_STREQ(json_string_value(at(j, "process.cwd")), "/srv");
    json_decref(j);
    m.workdir = "/data";
    CHECK_OK(build(&m, &c, &j, &e), &e);
    CHECK_STREQ(json_string_value(at(j, "process.cwd")), "/data");
    json_decref(j);
    m.workdir = "data";
    CHECK_FAILS(build(&m, &c, &j, &e), -EINVAL);
    CHECK(strstr(e.msg, "absolute"));
    CHECK_INT(e.kind, SUB_KIND_INPUT);
    fx_done(&m);
}

static char *namespaces_of(sub_svc_network net) {
    sub_svc_manifest m;
    sub_image_config c;
    fx_init(&m, &c);
    m.network = net;
    _cleanup_json_ json_t *j = NULL;
    sub_err e;
    char *r = xstrdup("error");
    if (build(&m, &c, &j, &e) == 0) {
        free(r);
        r = xstrdup("");
        size_t i;
        json_t *it;
        json_array_foreach(at(j, "linux.namespaces"), i, it) {
            const char *t = json_string_value(json_object_get(it, "type"));
            char *n = xasprintf("%s%s%s", r, i ? "|" : "", t);
            free(r);
            r = n;
            CHECK(json_object_size(it) == 1); /* no path: new namespaces, never a host one */
        }
    }
    fx_done(&m);
    return r;
}

TEST(bundle_network_host_omits_netns) {
    _cleanup_free_ char *priv = namespaces_of(SUB_NET_PRIVATE);
    _cleanup_free_ char *none = namespaces_of(SUB_NET_NONE);
    _cleanup_free_ char *host = namespaces_of(SUB_NET_HOST);
    CHECK_STREQ(priv, "pid|ipc|uts|mount|network");
    CHECK_STREQ(none, "pid|ipc|uts|mount|network");
    CHECK_STREQ(host, "pid|ipc|uts|mount");
}

TEST(bundle_resources) {
    sub_svc_manifest m;
    sub_image_config c;
    fx_init(&m, &c);
    _cleanup_json_ json_t *j = NULL;
    sub_err e;
    /* no limits: no memory/pids/cpu sections, devices denied all the same */
    CHECK_OK(build(&m, &c, &j, &e), &e);
    json_t *res = at(j, "linux.resources");
    CHECK(json_is_object(res));
    CHECK(!json_object_get(res, "memory"));
    CHECK(!json_object_get(res, "pids"));
    CHECK(!json_object_get(res, "cpu"));
    json_t *dev0 = json_array_get(json_object_get(res, "devices"), 0);
    CHECK(json_is_false(json_object_get(dev0, "allow")));
    CHECK_STREQ(json_string_value(json_object_get(dev0, "access")), "rwm");
    CHECK(!json_object_get(dev0, "type")); /* all devices */
    json_decref(j);

    m.memory_bytes = 256ull << 20;
    m.pids = 64;
    m.cpu_millis = 500;
    CHECK_OK(build(&m, &c, &j, &e), &e);
    CHECK_INT(json_integer_value(at(j, "linux.resources.memory.limit")), 268435456);
    CHECK_INT(json_integer_value(at(j, "linux.resources.pids.limit")), 64);
    CHECK_INT(json_integer_value(at(j, "linux.resources.cpu.quota")), 50000);
    CHECK_INT(json_integer_value(at(j, "linux.resources.cpu.period")), 100000);
    CHECK_STREQ(json_string_value(at(j, "linux.cgroupsPath")), "/substrate/hello-3");
    json_decref(j);
    m.cpu_millis = 2500; /* two and a half CPUs */
    m.memory_bytes = 8ull << 30;
    CHECK_OK(build(&m, &c, &j, &e), &e);
    CHECK_INT(json_integer_value(at(j, "linux.resources.cpu.quota")), 250000);
    CHECK_INT(json_integer_value(at(j, "linux.resources.memory.limit")), 8589934592LL);
    json_decref(j);
    m.memory_bytes = UINT64_MAX;
    CHECK_FAILS(build(&m, &c, &j, &e), -EINVAL);
    j = NULL;
    fx_done(&m);
}

TEST(bundle_capabilities) {
    sub_svc_manifest m;
    sub_image_config c;
    fx_init(&m, &c);
    _cleanup_json_ json_t *j = NULL;
    sub_err e;
    static const char *const sets[] = {"bounding", "effective", "inheritable", "permitted",
                                       "ambient"};
    CHECK_OK(build(&m, &c, &j, &e), &e);
    CHECK_INT(json_object_size(at(j, "process.capabilities")), 5);
    for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
        json_t *s = json_object_get(at(j, "process.capabilities"), sets[i]);
        CHECK(json_is_array(s) && json_array_size(s) == 0);
    }
    json_decref(j);
    char *caps[] = {"CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_NET_BIND_SERVICE", NULL};
    m.capabilities = caps;
    CHECK_OK(build(&m, &c, &j, &e), &e);
    for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
        _cleanup_free_ char *s = joined(json_object_get(at(j, "process.capabilities"), sets[i]));
        CHECK_STREQ(s, "CAP_NET_BIND_SERVICE|CAP_CHOWN");
    }
    json_decref(j);
    char *bad[] = {"NET_ADMIN", NULL};
    m.capabilities = bad;
    CHECK_FAILS(build(&m, &c, &j, &e), -EINVAL);
    CHECK(strstr(e.msg, "NET_ADMIN"));
    CHECK_INT(e.kind, SUB_KIND_INPUT);
    fx_done(&m);
}

TEST(bundle_annotations) {
    sub_svc_manifest m;
    sub_image_config c;
    fx_init(&m, &c);
    _cleanup_json_ json_t *j = NULL;
    sub_err e;
    CHECK_OK(build(&m, &c, &j, &e), &e);
    json_t *a = json_object_get(j, "annotations");
    CHECK_INT(json_object_size(a), 5);
    CHECK_STREQ(json_string_value(json_object_get(a, "dev.substrate.service")), "hello");
    CHECK_STREQ(json_string_value(json_object_get(a, "dev.substrate.manifest")),
                "/etc/substrate/hello.service.yaml");
    CHECK_STREQ(json_string_value(json_object_get(a, "dev.substrate.image")), IMAGE);
    CHECK_STREQ(json_string_value(json_object_get(a, "dev.substrate.image.digest")), DIGEST);
    CHECK_STREQ(json_string_value(json_object_get(a, "dev.substrate.generation")), "3");
    json_decref(j);
    /* an image without a digest is not something to run */
    sub_ref_free(&m.ref);
    CHECK_OK(sub_ref_parse("127.0.0.1:5000/substrate/hello:1.0", NULL, &m.ref, &e), &e);
    CHECK_FAILS(build(&m, &c, &j, &e), -EINVAL);
    CHECK(strstr(e.msg, "digest"));
    fx_done(&m);
}

/* The mounts as "dest type source opt,opt" lines. */
static char *mounts_str(json_t *mounts) {
    char *s = xstrdup("");
    size_t i;
    json_t *it;
    json_array_foreach(mounts, i, it) {
        json_t *o = json_object_get(it, "options");
        _cleanup_free_ char *opts = o ? joined(o) : xstrdup("-");
        char *n = xasprintf("%s%s %s %s %s\n", s,
                            json_string_value(json_object_get(it, "destination")),
                            json_string_value(json_object_get(it, "type")),
                            json_string_value(json_object_get(it, "source")), opts);
        free(s);
        s = n;
    }
    return s;
}

TEST(bundle_fixed_parts) {
    sub_svc_manifest m;
    sub_image_config c;
    fx_init(&m, &c);
    _cleanup_json_ json_t *j = NULL;
    sub_err e;
    CHECK_OK(build(&m, &c, &j, &e), &e);
    CHECK_STREQ(json_string_value(at(j, "ociVersion")), "1.0.2");
    CHECK_STREQ(json_string_value(at(j, "root.path")), ROOTFS);
    CHECK(json_is_true(at(j, "root.readonly")));
    CHECK_STREQ(json_string_value(at(j, "hostname")), "hello");
    CHECK(json_is_true(at(j, "process.noNewPrivileges")));
    CHECK(json_is_false(at(j, "process.terminal")));
    json_t *rl = json_array_get(at(j, "process.rlimits"), 0);
    CHECK_INT(json_array_size(at(j, "process.rlimits")), 1);
    CHECK_STREQ(json_string_value(json_object_get(rl, "type")), "RLIMIT_NOFILE");
    CHECK_INT(json_integer_value(json_object_get(rl, "soft")), 1024);
    CHECK_INT(json_integer_value(json_object_get(rl, "hard")), 1024);
    CHECK(!at(j, "hooks")); /* nothing runs on the host side */

    _cleanup_free_ char *ms = mounts_str(at(j, "mounts"));
    CHECK_STREQ(ms, "/proc proc proc -\n"
                    "/dev tmpfs tmpfs nosuid|strictatime|mode=755|size=65536k\n"
                    "/dev/pts devpts devpts "
                    "nosuid|noexec|newinstance|ptmxmode=0666|mode=0620|gid=5\n"
                    "/dev/shm tmpfs shm nosuid|noexec|nodev|mode=1777|size=65536k\n"
                    "/dev/mqueue mqueue mqueue nosuid|noexec|nodev\n"
                    "/sys sysfs sysfs nosuid|noexec|nodev|ro\n"
                    "/sys/fs/cgroup cgroup cgroup nosuid|noexec|nodev|relatime|ro\n"
                    "/tmp tmpfs tmpfs nosuid|nodev|mode=1777\n"
                    "/run tmpfs tmpfs nosuid|nodev|mode=755\n");

    /* maskedPaths, readonlyPaths and the mounts runc has are runc's own defaults */
    if (!sub_have_program("runc")) {
        unit_skip_part("same defaults as `runc spec`", "runc is not installed");
    } else {
        const char *tmp = unit_tmpdir();
        char *argv[] = {"runc", "spec", NULL};
        sub_proc_opts po = SUB_PROC_OPTS_INIT;
        po.cwd = tmp;
        po.stdout_fd = po.stderr_fd = SUB_FD_NULL;
        int st = -1;
        CHECK_OK(sub_run(argv, &po, &st, &e), &e);
        CHECK_INT(st, 0);
        _cleanup_free_ char *p = sub_path_join(tmp, "config.json");
        _cleanup_json_ json_t *rs = NULL;
        CHECK_OK(sub_json_load_file(p, 1 << 20, &rs, &e), &e);
        CHECK(json_equal(at(rs, "linux.maskedPaths"), at(j, "linux.maskedPaths")));
        CHECK(json_equal(at(rs, "linux.readonlyPaths"), at(j, "linux.readonlyPaths")));
        CHECK(json_equal(at(rs, "linux.resources.devices"), at(j, "linux.resources.devices")));
        json_t *rm = at(rs, "mounts");
        CHECK(json_array_size(rm) == 7);
        for (size_t i = 0; i < json_array_size(rm); i++)
            if (!json_equal(json_array_get(rm, i), json_array_get(at(j, "mounts"), i)))
                unit_fail(__FILE__, __LINE__, "mount %zu differs from runc's", i);
    }

    json_decref(j);
    sub_bundle_opts o = {.m = &m, .image = &c, .rootfs = ROOTFS, .cgroup_path = "/x",
                         .hostname = "web-1"};
    CHECK_OK(sub_bundle_config(&o, &j, &e), &e);
    CHECK_STREQ(json_string_value(at(j, "hostname")), "web-1");
    CHECK_STREQ(json_string_value(json_object_get(json_object_get(j, "annotations"),
                                                  "dev.substrate.generation")),
                "0");
    json_decref(j);
    j = NULL;
    o.rootfs = "relative/rootfs";
    CHECK_FAILS(sub_bundle_config(&o, &j, &e), -EINVAL);
    o.rootfs = ROOTFS;
    o.cgroup_path = NULL;
    CHECK_FAILS(sub_bundle_config(&o, &j, &e), -EINVAL);
    CHECK(j == NULL);
    fx_done(&m);
}

static const char *const dangerous[] = {
    "mount", "umount", "umount2", "pivot_root", "chroot", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "create_module", "query_module",
    "get_kernel_syms", "reboot", "swapon", "swapoff", "bpf", "perf_event_open", "ptrace",
    "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "keyctl", "add_key",
    "request_key", "unshare", "setns", "open_by_handle_at", "name_to_handle_at", "userfaultfd",
    "acct", "settimeofday", "stime", "clock_settime", "clock_settime64", "lookup_dcookie",
    "quotactl", "quotactl_fd", "iopl", "ioperm", "modify_ldt", "fsopen", "fsmount", "fsconfig",
    "fspick", "move_mount", "open_tree", "mount_setattr", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "syslog", "vhangup", "nfsservctl", "uselib", "personality",
    "fanotify_init", "sethostname", "setdomainname",
};

TEST(bundle_seccomp_profile) {
    sub_svc_manifest m;
    sub_image_config c;
    fx_init(&m, &c);
    _cleanup_json_ json_t *j = NULL;
    sub_err e;
    CHECK_OK(build(&m, &c, &j, &e), &e);
    json_t *sc = at(j, "linux.seccomp");
    CHECK_STREQ(json_string_value(json_object_get(sc, "defaultAction")), "SCMP_ACT_ERRNO");
    CHECK_INT(json_integer_value(json_object_get(sc, "defaultErrnoRet")), EPERM);
    _cleanup_free_ char *arches = joined(json_object_get(sc, "architectures"));
    CHECK_STREQ(arches, "SCMP_ARCH_X86_64|SCMP_ARCH_X86|SCMP_ARCH_X32");

    size_t nallow = 0, i, k;
    json_t *ent, *name;
    bool saw_clone = false, saw_clone3 = false;
    json_array_foreach(json_object_get(sc, "syscalls"), i, ent) {
        const char *action = json_string_value(json_object_get(ent, "action"));
        json_t *args = json_object_get(ent, "args");
        json_array_foreach(json_object_get(ent, "names"), k, name) {
            const char *n = json_string_value(name);
            CHECK(n != NULL);
            if (!n) continue;
            /* libseccomp knows it, on one of the listed architectures */
            if (seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, n) == __NR_SCMP_ERROR &&
                seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86, n) == __NR_SCMP_ERROR)
                unit_fail(__FILE__, __LINE__, "libseccomp does not know syscall \"%s\"", n);
            /* a name real on none of them would only be a pseudo number (send, recv) */
            if (seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, n) < 0 &&
                seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86, n) < 0)
                unit_fail(__FILE__, __LINE__, "\"%s\" is no x86 system call", n);
            for (size_t d = 0; d < ARRAY_SIZE(dangerous); d++)
                if (streq(n, dangerous[d]) && streq(action, "SCMP_ACT_ALLOW"))
                    unit_fail(__FILE__, __LINE__, "dangerous syscall \"%s\" is allowed", n);
            if (streq(n, "clone")) {
                saw_clone = true;
                /* only with no namespace flag in arg 0 */
                CHECK_STREQ(action, "SCMP_ACT_ALLOW");
                json_t *a0 = json_array_get(args, 0);
                CHECK_INT(json_array_size(args), 1);
                CHECK_INT(json_integer_value(json_object_get(a0, "index")), 0);
                CHECK_STREQ(json_string_value(json_object_get(a0, "op")), "SCMP_CMP_MASKED_EQ");
                long long mask = json_integer_value(json_object_get(a0, "value"));
                static const long long ns_flags[] = {0x00020000, 0x02000000, 0x04000000,
                                                     0x08000000, 0x10000000, 0x20000000,
                                                     0x40000000}; /* NEWNS .. NEWNET */
                for (size_t f = 0; f < ARRAY_SIZE(ns_flags); f++) CHECK((mask & ns_flags[f]) != 0);
                CHECK((mask & 0x00000100) == 0); /* CLONE_VM: threads still work */
                CHECK_INT(json_integer_value(json_object_get(a0, "valueTwo")), 0);
            } else if (streq(n, "clone3")) {
                saw_clone3 = true;
                CHECK_STREQ(action, "SCMP_ACT_ERRNO");
                CHECK_INT(json_integer_value(json_object_get(ent, "errnoRet")), ENOSYS);
            } else {
                CHECK_STREQ(action, "SCMP_ACT_ALLOW");
                CHECK(args == NULL);
                nallow++;
            }
        }
    }
    CHECK(saw_clone && saw_clone3);
    CHECK(nallow > 250); /* generous: ordinary programs must not trip over it */
    /* and it does hold what ordinary programs use */
    json_t *allow = json_object_get(json_array_get(json_object_get(sc, "syscalls"), 0), "names");
    static const char *const needed[] = {"read", "write", "openat", "execve", "mmap", "futex",
                                         "epoll_wait", "socket", "connect", "accept4",
                                         "rt_sigaction", "exit_group", "wait4", "clock_gettime"};
    for (size_t n = 0; n < ARRAY_SIZE(needed); n++) {
        bool found = false;
        json_array_foreach(allow, k, name) found |= streq(json_string_value(name), needed[n]);
        if (!found) unit_fail(__FILE__, __LINE__, "\"%s\" is not allowed", needed[n]);
    }
    /* no name twice */
    json_array_foreach(allow, k, name) {
        for (size_t l = k + 1; l < json_array_size(allow); l++)
            if (json_equal(name, json_array_get(allow, l)))
                unit_fail(__FILE__, __LINE__, "\"%s\" listed twice", json_string_value(name));
    }
    fx_done(&m);
}

static bool have_jsonschema(void) {
    char *argv[] = {"/usr/bin/python3", "-c", "import jsonschema", NULL};
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdout_fd = po.stderr_fd = SUB_FD_NULL;
    int st = -1;
    return access(argv[0], X_OK) == 0 && sub_run(argv, &po, &st, NULL) == 0 && st == 0;
}

/* Validate a config.json with tests/tools/oci-schema-check runtime-config. */
static void check_schema(const char *path) {
    _cleanup_free_ char *tool = unit_src("tests/tools/oci-schema-check");
    char *argv[] = {"/usr/bin/python3", "-I", tool, "runtime-config", (char *)path, NULL};
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stderr_fd = SUB_FD_STDOUT;
    _cleanup_free_ char *out = NULL;
    int st = -1;
    sub_err e = {0};
    CHECK_OK(sub_run_capture(argv, &po, 1 << 20, &out, &st, &e), &e);
    if (st != 0) unit_fail(__FILE__, __LINE__, "%s is not a valid runtime config: %s", path, out);
    CHECK(out && strstr(out, "valid runtime-config"));
}

TEST(bundle_write) {
    sub_svc_manifest m;
    sub_image_config c;
    fx_init(&m, &c);
    const char *tmp = unit_tmpdir();
    _cleanup_free_ char *dir = xasprintf("%s/bundles/hello/3", tmp);
    sub_bundle_opts o = {.m = &m, .image = &c, .rootfs = ROOTFS,
                         .cgroup_path = "/substrate/hello-3", .generation = 3};
    sub_err e = {0};
    char *caps[] = {"CAP_NET_BIND_SERVICE", NULL};
    char *env[] = {"MODE=x", NULL};
    m.capabilities = caps;
    m.env = env;
    m.user = "1000:1000";
    m.memory_bytes = 1 << 26;
    m.pids = 10;
    m.cpu_millis = 250;
    CHECK_OK(sub_bundle_write(dir, &o, &e), &e);
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700);
    _cleanup_free_ char *cfg = sub_path_join(dir, "config.json");
    CHECK(stat(cfg, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600);
    _cleanup_free_ char *text = NULL;
    size_t len;
    CHECK_OK(sub_read_file(cfg, 1 << 20, &text, &len, &e), &e);
    _cleanup_json_ json_t *got = NULL, *want = NULL;
    CHECK_OK(sub_json_parse(text, len, 1 << 20, "config.json", &got, &e), &e);
    CHECK_OK(sub_bundle_config(&o, &want, &e), &e);
    CHECK(json_equal(got, want));
    /* pretty and sorted: people read it */
    CHECK(strstr(text, "\n  \"annotations\": {\n"));
    char *pa = strstr(text, "\"annotations\""), *ph = strstr(text, "\"hostname\""),
         *pl = strstr(text, "\"linux\""), *pp = strstr(text, "\"process\""),
         *pr = strstr(text, "\"root\"");
    CHECK(pa && ph && pl && pp && pr && pa < ph && ph < pl && pl < pp && pp < pr);
    CHECK(text[len - 1] == '\n');

    /* rewritten in place (same dir, made private again); no temp file left */
    CHECK(chmod(dir, 0755) == 0);
    o.generation = 4;
    CHECK_OK(sub_bundle_write(dir, &o, &e), &e);
    CHECK(stat(dir, &st) == 0 && (st.st_mode & 07777) == 0700);
    free(text);
    text = NULL;
    CHECK_OK(sub_read_file(cfg, 1 << 20, &text, &len, &e), &e);
    CHECK(strstr(text, "\"dev.substrate.generation\": \"4\""));
    glob_t g;
    _cleanup_free_ char *pat = xasprintf("%s/*", dir);
    CHECK(glob(pat, 0, NULL, &g) == 0 && g.gl_pathc == 1);
    globfree(&g);

    /* schema validity: this one and a few variants */
    if (!have_jsonschema()) {
        unit_skip_part("runtime-spec schema",
                       "/usr/bin/python3 has no jsonschema (apt-get install python3-jsonschema)");
    } else {
        check_schema(cfg);
        m.network = SUB_NET_HOST;
        m.capabilities = NULL;
        m.memory_bytes = m.pids = m.cpu_millis = 0;
        m.user = NULL;
        _cleanup_free_ char *dir2 = xasprintf("%s/bundles/hello/5", tmp);
        CHECK_OK(sub_bundle_write(dir2, &o, &e), &e);
        _cleanup_free_ char *cfg2 = sub_path_join(dir2, "config.json");
        check_schema(cfg2);
        /* the checker can say no to what we might get wrong */
        _cleanup_free_ char *bad = sub_path_join(tmp, "bad.json");
        json_object_set_new(json_object_get(json_object_get(want, "process"), "user"), "uid",
                            json_integer(-1));
        _cleanup_free_ char *bt = sub_json_dump_pretty(want);
        CHECK_OK(sub_write_file_atomic(bad, bt, strlen(bt), 0644, &e), &e);
        _cleanup_free_ char *tool = unit_src("tests/tools/oci-schema-check");
        char *argv[] = {"/usr/bin/python3", "-I", tool, "runtime-config", bad, NULL};
        sub_proc_opts po = SUB_PROC_OPTS_INIT;
        po.stdout_fd = po.stderr_fd = SUB_FD_NULL;
        int rc = -1;
        CHECK_OK(sub_run(argv, &po, &rc, &e), &e);
        CHECK_INT(rc, 1);
    }

    /* a refused manifest creates nothing */
    m.command = NULL;
    c.entrypoint = c.cmd = NULL;
    _cleanup_free_ char *dir3 = xasprintf("%s/bundles/broken/1", tmp);
    CHECK_FAILS(sub_bundle_write(dir3, &o, &e), -EINVAL);
    _cleanup_free_ char *broken = xasprintf("%s/bundles/broken", tmp);
    CHECK(!sub_path_exists(broken));
    /* a file where the bundle dir should be */
    c.cmd = img_cmd;
    _cleanup_free_ char *file = sub_path_join(tmp, "afile");
    CHECK_OK(sub_write_file_atomic(file, "x", 1, 0644, &e), &e);
    CHECK(sub_bundle_write(file, &o, &e) < 0);
    fx_done(&m);
}

/* ---- under runc ---------------------------------------------------------------------------- */

/* A rootfs of one static busybox, with the mount points the config names. */
static int make_rootfs(const char *rootfs, sub_err *e) {
    static const char *const dirs[] = {"bin", "proc", "dev", "sys", "tmp",
                                       "run", "etc", "mnt", "data"};
    static const char *const applets[] = {"sh", "id", "cat", "touch", "grep", "cut", "mount",
                                          "unshare", "hostname", "pwd", "echo", "true", "tr"};
    int r;
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        _cleanup_free_ char *d = sub_path_join(rootfs, dirs[i]);
        if ((r = sub_mkdir_p(d, 0755, e)) < 0) return r;
    }
    /* runc gives a tmpfs the mode of the directory it covers, as images have it */
    _cleanup_free_ char *t = sub_path_join(rootfs, "tmp");
    if (chmod(t, 01777) < 0) return sub_err_set(e, -errno, "chmod %s: %m", t);
    /* a directory the service's uid owns: only a read-only root keeps it out */
    _cleanup_free_ char *data = sub_path_join(rootfs, "data");
    if (chown(data, 1000, 1000) < 0) return sub_err_set(e, -errno, "chown %s: %m", data);
    _cleanup_free_ char *bb = sub_path_join(rootfs, "bin/busybox");
    if ((r = sub_copy_file("/bin/busybox", bb, 0755, e)) < 0) return r;
    for (size_t i = 0; i < ARRAY_SIZE(applets); i++) {
        _cleanup_free_ char *l = xasprintf("%s/bin/%s", rootfs, applets[i]);
        if (symlink("busybox", l) < 0) return sub_err_set(e, -errno, "symlink %s: %m", l);
    }
    return 0;
}

/* Is the ELF at path statically linked (no PT_INTERP)? A dynamic busybox
 * would need its libraries in the rootfs. */
static bool is_static(const char *path) {
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (sub_read_file(path, 64 << 20, &data, &len, NULL) < 0 || len < 64) return false;
    /* ELF64 little-endian: e_phoff at 32, e_phentsize at 54, e_phnum at 56 */
    if (memcmp(data, "\177ELF\2\1", 6) != 0) return false;
    uint64_t phoff;
    uint16_t phentsize, phnum;
    memcpy(&phoff, data + 32, 8);
    memcpy(&phentsize, data + 54, 2);
    memcpy(&phnum, data + 56, 2);
    for (uint16_t i = 0; i < phnum; i++) {
        uint64_t off = phoff + (uint64_t)i * phentsize;
        if (off + 4 > len) return false;
        uint32_t type;
        memcpy(&type, data + off, 4);
        if (type == 3) return false; /* PT_INTERP */
    }
    return true;
}

/* A static threaded program in the rootfs (bin/threads): glibc tries clone3
 * first and must fall back to clone under the profile. False when no static
 * C toolchain is here. */
static const char threads_c[] =
    "#include <pthread.h>\n#include <stdio.h>\n#include <unistd.h>\n"
    "static void *f(void *a) { return a; }\n"
    "int main(void) {\n"
    "    pthread_t t; void *r = NULL; int x = 42;\n"
    "    int e = pthread_create(&t, NULL, f, &x);\n"
    "    if (e) { printf(\"threads=create-%d\\n\", e); return 1; }\n"
    "    pthread_join(t, &r);\n"
    "    pid_t p = fork(); if (p == 0) _exit(0);\n"
    "    printf(\"threads=%s\\n\", r == &x && p > 0 ? \"ok\" : \"wrong\");\n"
    "    return 0;\n}\n";

static bool make_threads_program(const char *tmp, const char *rootfs) {
    if (!sub_have_program("cc")) return false;
    _cleanup_free_ char *src = sub_path_join(tmp, "threads.c");
    _cleanup_free_ char *bin = sub_path_join(rootfs, "bin/threads");
    sub_err e = {0};
    if (sub_write_file_atomic(src, threads_c, strlen(threads_c), 0644, &e) < 0) return false;
    char *argv[] = {"cc", "-static", "-pthread", "-o", bin, src, NULL};
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdin_fd = po.stdout_fd = po.stderr_fd = SUB_FD_NULL;
    int st = -1;
    return sub_run(argv, &po, &st, &e) == 0 && st == 0;
}

/* Leftover cgroup directories of cgroup_path in any controller: removed, and counted. */
static int cgroup_leftovers(const char *cgroup_path) {
    _cleanup_free_ char *pat = xasprintf("/sys/fs/cgroup/*%s", cgroup_path);
    glob_t g;
    int n = 0;
    if (glob(pat, GLOB_ONLYDIR, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            n++;
            (void)rmdir(g.gl_pathv[i]);
        }
        globfree(&g);
    }
    /* the shared parent, when nothing else of ours is in it */
    _cleanup_free_ char *ppat = xasprintf("/sys/fs/cgroup/*/substrate-test");
    if (glob(ppat, GLOB_ONLYDIR, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) (void)rmdir(g.gl_pathv[i]);
        globfree(&g);
    }
    return n;
}

/* runc run the bundle in the foreground; its output (stdout and stderr). */
static char *runc_run(const char *runc_root, const char *bundle, const char *id, int *status) {
    char *argv[] = {"timeout", "-k", "5", "60", "runc", "--root", (char *)runc_root, "run",
                    "--bundle", (char *)bundle, (char *)id, NULL};
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdin_fd = SUB_FD_NULL;
    po.stderr_fd = SUB_FD_STDOUT;
    char *out = NULL;
    sub_err e = {0};
    *status = -1;
    if (sub_run_capture(argv, &po, 1 << 20, &out, status, &e) < 0) {
        unit_fail(__FILE__, __LINE__, "runc: %s", e.msg);
        return xstrdup("");
    }
    return out;
}

static void runc_delete(const char *runc_root, const char *id) {
    char *argv[] = {"runc", "--root", (char *)runc_root, "delete", "-f", (char *)id, NULL};
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdin_fd = po.stdout_fd = po.stderr_fd = SUB_FD_NULL;
    int st;
    (void)sub_run(argv, &po, &st, NULL);
}

/* The value of "key=" on a line of its own in out, or NULL (caller frees). */
static char *field(const char *out, const char *key) {
    _cleanup_free_ char *k = xasprintf("%s=", key);
    for (const char *l = out; l && *l;) {
        const char *nl = strchrnul(l, '\n');
        if (str_has_prefix(l, k) && (size_t)(nl - l) >= strlen(k))
            return xstrndup(l + strlen(k), (size_t)(nl - l) - strlen(k));
        l = *nl ? nl + 1 : nl;
    }
    return NULL;
}

#define SCRIPT                                                                                     \
    "echo uid=$(id -u):$(id -g)\n"                                                                 \
    "echo cwd=$(pwd)\n"                                                                            \
    "echo host=$(hostname)\n"                                                                      \
    "echo mode=$MODE\n"                                                                            \
    "if touch /tmp/ok 2>/dev/null; then echo tmp=rw; else echo tmp=ro; fi\n"                      \
    "if touch /data/x 2>/dev/null; then echo root=rw; else echo root=ro; fi\n"                    \
    "echo capeff=$(grep '^CapEff:' /proc/self/status | cut -f2)\n"                                \
    "echo capbnd=$(grep '^CapBnd:' /proc/self/status | cut -f2)\n"                                \
    "echo nnp=$(grep '^NoNewPrivs:' /proc/self/status | cut -f2)\n"                               \
    "echo seccomp=$(grep '^Seccomp:' /proc/self/status | cut -f2)\n"                              \
    "echo netdevs=$(grep : /proc/net/dev | cut -d: -f1 | tr -d ' ')\n"                             \
    "echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null)\n"                   \
    "echo pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null)\n"                                 \
    "unshare -U true 2>/dev/null; echo unshare=$?\n"                                               \
    "mount -t tmpfs x /mnt 2>/dev/null; echo mount=$?\n"                                           \
    "if [ -x /bin/threads ]; then /bin/threads; fi\n"                                           \
    "echo done=1\n"

TEST(bundle_runs_under_runc) {
    if (geteuid() != 0) {
        unit_skip("needs root to run containers with runc");
        return;
    }
    if (!sub_have_program("runc")) {
        unit_skip("runc is not installed");
        return;
    }
    if (!sub_have_program("timeout")) {
        unit_skip("coreutils timeout is not installed");
        return;
    }
    if (!is_static("/bin/busybox")) {
        unit_skip("no static /bin/busybox (apt-get install busybox-static)");
        return;
    }
    const char *tmp = unit_tmpdir();
    sub_err e = {0};
    _cleanup_free_ char *rootfs = sub_path_join(tmp, "rootfs");
    _cleanup_free_ char *bundle = sub_path_join(tmp, "bundle");
    _cleanup_free_ char *runc_root = sub_path_join(tmp, "runc-root");
    _cleanup_free_ char *id = xasprintf("substrate-test-bundle-%d", (int)getpid());
    _cleanup_free_ char *cgpath = xasprintf("/substrate-test/bundle-%d", (int)getpid());
    CHECK_OK(make_rootfs(rootfs, &e), &e);
    CHECK(chmod(tmp, 0755) == 0); /* the container's uid reaches its rootfs through it */
    bool threads = make_threads_program(tmp, rootfs);

    sub_svc_manifest m;
    sub_image_config c;
    fx_init(&m, &c);
    m.name = "bundle-test";
    char *command[] = {"/bin/sh", "-c", SCRIPT, NULL};
    char *env[] = {"MODE=manifest", NULL};
    m.command = command;
    m.env = env;
    m.user = "1000:1000";
    m.workdir = "/tmp";
    m.memory_bytes = 64ull << 20;
    m.pids = 32;
    m.cpu_millis = 500;
    sub_bundle_opts o = {.m = &m, .image = &c, .rootfs = rootfs, .cgroup_path = cgpath,
                         .generation = 1};
    CHECK_OK(sub_bundle_write(bundle, &o, &e), &e);

    int st;
    _cleanup_free_ char *out = runc_run(runc_root, bundle, id, &st);
    runc_delete(runc_root, id);
    CHECK_INT(st, 0);
    _cleanup_free_ char *done = field(out, "done");
    if (!streq(done, "1")) unit_fail(__FILE__, __LINE__, "the container did not finish:\n%s", out);

    static const struct {
        const char *key, *want;
    } want[] = {
        {"uid", "1000:1000"},
        {"cwd", "/tmp"},
        {"host", "bundle-test"},
        {"mode", "manifest"},
        {"tmp", "rw"},
        {"root", "ro"},
        {"capeff", "0000000000000000"},
        {"capbnd", "0000000000000000"},
        {"nnp", "1"},
        {"seccomp", "2"},
        {"netdevs", "lo"},
        {"pids", "32"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        _cleanup_free_ char *v = field(out, want[i].key);
        if (!streq(v, want[i].want))
            unit_fail(__FILE__, __LINE__, "in the container %s=%s, want %s\n%s", want[i].key,
                      v ? v : "(missing)", want[i].want, out);
    }
    if (sub_path_exists("/sys/fs/cgroup/memory/memory.limit_in_bytes")) {
        _cleanup_free_ char *mem = field(out, "mem");
        CHECK_STREQ(mem, "67108864");
    } else {
        unit_skip_part("memory limit seen in the container", "no cgroup v1 memory controller here");
    }
    if (threads) {
        _cleanup_free_ char *th = field(out, "threads");
        CHECK_STREQ(th, "ok");
    } else {
        unit_skip_part("a threaded program runs under the profile",
                       "no C compiler with a static libc here to build one");
    }
    _cleanup_free_ char *mnt = field(out, "mount");
    CHECK(mnt && !streq(mnt, "0"));
    _cleanup_free_ char *uns = field(out, "unshare");
    CHECK(uns && !streq(uns, "0"));
    CHECK_INT(cgroup_leftovers(cgpath), 0);

    /* The control: without the seccomp profile the same unprivileged process
     * may make a user namespace, so the profile is what refused it above. */
    _cleanup_free_ char *cfgp = sub_path_join(bundle, "config.json");
    _cleanup_json_ json_t *cfg = NULL;
    CHECK_OK(sub_json_load_file(cfgp, 1 << 20, &cfg, &e), &e);
    json_object_del(json_object_get(cfg, "linux"), "seccomp");
    _cleanup_free_ char *text = sub_json_dump_pretty(cfg);
    CHECK_OK(sub_write_file_atomic(cfgp, text, strlen(text), 0600, &e), &e);
    free(out);
    out = runc_run(runc_root, bundle, id, &st);
    runc_delete(runc_root, id);
    CHECK_INT(st, 0);
    _cleanup_free_ char *sc = field(out, "seccomp");
    CHECK_STREQ(sc, "0");
    free(uns);
    uns = field(out, "unshare");
    if (streq(uns, "0"))
        ; /* as expected: the filter made the difference */
    else
        unit_skip_part("seccomp is what refuses unshare",
                       "this host refuses unprivileged user namespaces even without the filter");
    CHECK_INT(cgroup_leftovers(cgpath), 0);
    fx_done(&m);
}
