/* The golden VM: build (mmdebstrap -> platform/vm/customize -> mke2fs -d),
 * cache by image key, boot with qemu (KVM when the probe boots, else TCG),
 * pin the host key from the serial console, wait for SSH and the services;
 * and destroy (QMP power-down, then SIGKILL by the recorded pid). vm.h. */
#include "substrate/vm.h"
#include "substrate/cosign-registry.h"
#include "substrate/config.h"
#include "substrate/fs.h"
#include "substrate/git.h"
#include "substrate/json.h"
#include "substrate/proc.h"
#include "substrate/sign.h"
#include "substrate/strbuf.h"
#include "substrate/tier2.h"
#include "substrate/vmimage.h"
#include "substrate/vmspec.h"
#include <ctype.h>
#include <inttypes.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define VM_RECORD_MAX (1u << 20)
#define SERIAL_MAX (8u << 20)
#define KVM_PROBE_MS 15000
#define DEFAULT_DEADLINE_S 900
#define DEFAULT_STOP_S 120
#define HOSTKEY_MARK "substrate-vm hostkey "
/* Always in the image, beside the base set and the spec's packages. */
#define VM_SYSTEM_PACKAGES "openssh-server,systemd-sysv,dbus,sudo,ca-certificates"

typedef struct vm_ctx {
    const sub_vm_provision_opts *o;
    int64_t t0;
} vm_ctx;

static void closedirp(DIR **d) {
    if (*d) closedir(*d);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void stage(const vm_ctx *c, const char *name, const char *detail, bool done) {
    if (c->o->progress) c->o->progress(c->o->ud, name, detail, done, now_ms() - c->t0);
}

const char *sub_vm_cache_dir(void) {
    const char *s = getenv("SUBSTRATE_VM_CACHE");
    return s && *s ? s : SUB_VM_DEFAULT_CACHE;
}

static const char *debs_dir(void) {
    const char *s = getenv("SUBSTRATE_VM_DEBS");
    return s && *s ? s : SUB_VM_DEFAULT_DEBS;
}

char *sub_vm_run_dir(const char *name) {
    _cleanup_free_ char *rel = xasprintf("vm/%s", name);
    return sub_state_path(rel);
}

/* ---- the mirror -------------------------------------------------------------------------- */

/* The Debian mirror this host's apt uses: the first http(s) URI ending in
 * /debian in its sources ($SUBSTRATE_VM_MIRROR overrides). */
static char *apt_mirror(void) {
    const char *env = getenv("SUBSTRATE_VM_MIRROR");
    if (env && *env) return xstrdup(env);
    static const char *const files[] = {"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *txt = NULL;
        size_t len;
        if (sub_read_file(files[i], 1 << 20, &txt, &len, NULL) < 0) continue;
        for (char *save = NULL, *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char *p = strstr(line, "http");
            if (!p || (strchr(line, '#') && strchr(line, '#') < p)) continue;
            size_t n = strcspn(p, " \t");
            while (n && p[n - 1] == '/') n--;
            if (n > 7 && !strncmp(p + n - 7, "/debian", 7)) return xstrndup(p, n);
        }
    }
    return xstrdup("http://deb.debian.org/debian");
}

static int release_digest(const char *mirror, const char *suite, char out[SUB_DIGEST_MAX], sub_err *e) {
    _cleanup_free_ char *url = xasprintf("%s/dists/%s/InRelease", mirror, suite);
    char *argv[] = {"curl", "-fsS", "--max-time", "60", "--", url, NULL};
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdin_fd = SUB_FD_NULL;
    _cleanup_free_ char *body = NULL;
    int st, r;
    if ((r = sub_run_capture(argv, &po, 16u << 20, &body, &st, e)) < 0) return r;
    if (st != 0 || !body || !*body)
        return sub_err_setk(e, SUB_KIND_ENV, -EIO,
                            "could not read the mirror's Release file %s (curl exit %d): the image key "
                            "needs it; check the mirror (set $SUBSTRATE_VM_MIRROR to use another)",
                            url, st);
    return sub_sha256_buf(body, strlen(body), out, e);
}

/* ---- processes and files ----------------------------------------------------------------- */

/* Is pid a qemu started for run dir run (its command line names our pidfile)?
 * qemu removes its pidfile while it shuts down, so a stop watches the pid. */
static bool is_our_qemu(pid_t pid, const char *run) {
    char cmdp[64];
    snprintf(cmdp, sizeof cmdp, "/proc/%d/cmdline", (int)pid);
    _cleanup_free_ char *cmd = NULL, *pidp = sub_path_join(run, "qemu.pid");
    size_t len;
    if (pid <= 1 || sub_read_file(cmdp, 1 << 16, &cmd, &len, NULL) < 0) return false;
    for (size_t i = 0; i < len; i++)
        if (!cmd[i]) cmd[i] = ' ';
    return strstr(cmd, "qemu-system") && strstr(cmd, pidp);
}

/* The pid of the qemu this run dir started, when it still runs; else 0. */
static pid_t qemu_pid(const char *run) {
    _cleanup_free_ char *pidp = sub_path_join(run, "qemu.pid"), *txt = NULL;
    size_t len;
    if (sub_read_file(pidp, 64, &txt, &len, NULL) < 0) return 0;
    long pid = strtol(txt, NULL, 10);
    return pid > 1 && pid < INT32_MAX && is_our_qemu((pid_t)pid, run) ? (pid_t)pid : 0;
}

static bool port_free(uint16_t port) {
    _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
}

/* The last n lines of a file, for an error's detail (caller frees; NULL if unreadable). */
static char *file_tail(const char *path, int n) {
    _cleanup_free_ char *txt = NULL;
    size_t len;
    if (sub_read_file(path, SERIAL_MAX, &txt, &len, NULL) < 0 || !len) return NULL;
    size_t i = len;
    if (txt[i - 1] == '\n') i--;
    for (int k = 0; i > 0; i--)
        if (txt[i - 1] == '\n' && ++k == n) break;
    return sub_utf8_sanitize(txt + i);
}

/* Run argv with its output appended to log (truncated first when fresh); a
 * non-zero exit is an error quoting the log's end. */
static int run_logged(char *const argv[], const char *log, bool fresh, const char *cwd, char *const *env,
                      sub_err *e) {
    _cleanup_close_ int fd = open(log, O_WRONLY | O_CREAT | (fresh ? O_TRUNC : O_APPEND) | O_CLOEXEC, 0600);
    if (fd < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "opening %s: %m", log);
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdin_fd = SUB_FD_NULL;
    po.stdout_fd = fd;
    po.stderr_fd = fd;
    po.cwd = cwd;
    po.setenv = env;
    int st, r;
    if ((r = sub_run(argv, &po, &st, e)) < 0) return r;
    if (st != 0) {
        _cleanup_free_ char *cmd = sub_argv_str(argv), *tail = file_tail(log, 25);
        sub_err_setk(e, SUB_KIND_ENV, -EIO, "%s failed (exit %d); its output is in %s", cmd, st, log);
        if (tail) sub_err_detail(e, "%s", tail);
        return -EIO;
    }
    return 0;
}

static uint64_t allocated_bytes(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* ---- the platform keys ------------------------------------------------------------------- */

static int ssh_keypair(char **priv, sub_err *e) {
    _cleanup_free_ char *dir = sub_state_path("vm/ssh");
    int r;
    if ((r = sub_mkdir_p(dir, 0700, e)) < 0) return r;
    *priv = sub_path_join(dir, "id_ed25519");
    _cleanup_free_ char *pub = xasprintf("%s.pub", *priv);
    if (sub_path_exists(*priv) && sub_path_exists(pub)) return 0;
    unlink(*priv);
    unlink(pub);
    char *argv[] = {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "substrate-platform", "-f", *priv, NULL};
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdin_fd = SUB_FD_NULL;
    po.stdout_fd = SUB_FD_NULL;
    int st;
    if ((r = sub_run(argv, &po, &st, e)) < 0) return r;
    if (st != 0) return sub_err_setk(e, SUB_KIND_ENV, -EIO, "ssh-keygen could not make %s (exit %d)", *priv, st);
    return chmod(*priv, 0600) < 0 ? sub_err_setk(e, SUB_KIND_ENV, -errno, "chmod %s: %m", *priv) : 0;
}

/* ---- building the image ------------------------------------------------------------------ */

/* Remove .build-* directories of builds whose process is gone, with what
 * was left mounted in them. */
static void sweep_builds(const char *cache) {
    _cleanup_(closedirp) DIR *d = opendir(cache);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, ".build-", 7)) continue;
        const char *dash = strrchr(de->d_name, '-');
        long pid = dash ? strtol(dash + 1, NULL, 10) : 0;
        if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) continue;
        _cleanup_free_ char *p = sub_path_join(cache, de->d_name);
        sub_umount_under(p); /* a killed mmdebstrap leaves its chroot's /proc, /sys, /dev/pts mounted */
        sub_rm_rf(p, NULL);
    }
}

static char *newest_boot_file(const char *boot, const char *prefix) {
    _cleanup_(closedirp) DIR *d = opendir(boot);
    if (!d) return NULL;
    char *best = NULL;
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, prefix, strlen(prefix)) && (!best || strverscmp(de->d_name, best) > 0)) {
            free(best);
            best = xstrdup(de->d_name);
        }
    if (!best) return NULL;
    char *p = sub_path_join(boot, best);
    free(best);
    return p;
}

static char *join_packages(char *const *v) {
    sub_buf b = {0};
    for (; *v; v++) {
        if (b.len) sub_buf_putc(&b, ',');
        sub_buf_puts(&b, *v);
    }
    return sub_buf_detach(&b, NULL);
}

static int build_steps(const vm_ctx *c, const sub_vm_spec *s, const char *repo, const char *commit,
                       const char *mirror, const char *signer_id, const char *image_key, const char *tmp,
                       sub_err *e) {
    const char *cache = sub_vm_cache_dir();
    int r;
    _cleanup_free_ char *rootdir = sub_path_join(tmp, "root"), *log = sub_path_join(cache, "build.log"),
                       *users = NULL, *keys = sub_path_join(tmp, "ssh-keys"), *signer = sub_state_path("keys");
    unlink(log);
    /* what customize needs, in its environment */
    sub_buf ub = {0}, kb = {0}, sb = {0};
    for (size_t i = 0; i < s->nusers; i++) {
        sub_buf_printf(&ub, "%s %d\n", s->users[i].name, s->users[i].sudo ? 1 : 0);
        for (char **k = s->users[i].ssh_keys; *k; k++) sub_buf_printf(&kb, "%s %s\n", s->users[i].name, *k);
    }
    for (char **v = s->services; *v; v++) sub_buf_printf(&sb, "%s%s", sb.len ? " " : "", *v);
    users = sub_buf_detach(&ub, NULL);
    _cleanup_free_ char *svcs = sub_buf_detach(&sb, NULL);
    r = sub_write_file_new(keys, kb.data ? kb.data : "", kb.len, 0600, e);
    sub_buf_free(&kb);
    if (r < 0) return r;

    _cleanup_strv_ char **all = sub_vm_spec_all_packages(s);
    _cleanup_free_ char *pk = join_packages(all), *inc = xasprintf("--include=" VM_SYSTEM_PACKAGES ",%s", pk),
                       *customize = xasprintf("%s/platform/vm/customize", repo),
                       *hook = xasprintf("--customize-hook=%s \"$1\"", customize),
                       *sync_in = xasprintf("--setup-hook=sync-in %s /var/cache/apt/archives/", debs_dir()),
                       *sync_out = xasprintf("--customize-hook=sync-out /var/cache/apt/archives %s", debs_dir()),
                       *src1 = xasprintf("deb %s %s main", mirror, s->suite),
                       *src2 = xasprintf("deb %s %s-updates main", mirror, s->suite),
                       *src3 = xasprintf("deb %s-security %s-security main", mirror, s->suite),
                       *e_repo = xasprintf("SUBVM_REPO=%s", repo), *e_commit = xasprintf("SUBVM_COMMIT=%s", commit),
                       *e_name = xasprintf("SUBVM_NAME=%s", s->name), *e_users = xasprintf("SUBVM_USERS=%s", users),
                       *e_keys = xasprintf("SUBVM_KEYS=%s", keys), *e_svcs = xasprintf("SUBVM_SERVICES=%s", svcs),
                       *e_signer = xasprintf("SUBVM_SIGNER=%s", signer);
    char *env[] = {e_repo, e_commit, e_name, e_users, e_keys, e_svcs, e_signer, NULL};
    char *mm[] = {"mmdebstrap", "--variant=important", "--mode=root", "--format=directory",
                  "--skip=essential/unlink", inc,
                  "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/", sync_in, sync_out, hook,
                  s->suite, rootdir, src1, src2, src3, NULL};
    _cleanup_free_ char *what = xasprintf("mmdebstrap %s, %zu packages, Substrate %.12s built inside; log %s",
                                          s->suite, strv_len(all), commit, log);
    stage(c, "root filesystem", what, false);
    if ((r = run_logged(mm, log, false, repo, env, e)) < 0) return r;
    stage(c, "root filesystem", NULL, true);

    stage(c, "kernel", "vmlinuz and initrd.img from the image's /boot", false);
    _cleanup_free_ char *boot = sub_path_join(rootdir, "boot"), *vmlinuz = newest_boot_file(boot, "vmlinuz-"),
                       *initrd = newest_boot_file(boot, "initrd.img-"), *k_out = sub_path_join(tmp, "vmlinuz"),
                       *i_out = sub_path_join(tmp, "initrd.img");
    if (!vmlinuz || !initrd) {
        return sub_err_setk(e, SUB_KIND_ENV, -ENOENT, "the image's /boot holds no vmlinuz-* and initrd.img-* "
                                                      "(is linux-image-amd64 in the package set?)");
    }
    if ((r = sub_copy_file(vmlinuz, k_out, 0644, e)) < 0 || (r = sub_copy_file(initrd, i_out, 0644, e)) < 0) return r;
    stage(c, "kernel", NULL, true);

    _cleanup_free_ char *disk = sub_path_join(tmp, "disk.img"),
                       *size = xasprintf("%" PRIu64 "k", s->disk_bytes / 1024),
                       *dsay = xasprintf("mke2fs -d, ext4, %" PRIu64 " MiB (sparse)", s->disk_bytes >> 20);
    stage(c, "disk image", dsay, false);
    char *mk[] = {"mke2fs", "-q", "-F", "-t", "ext4", "-L", "golden", "-d", rootdir, disk, size, NULL};
    if ((r = run_logged(mk, log, false, NULL, NULL, e)) < 0) return r;
    if ((r = sub_rm_rf(rootdir, e)) < 0) return r;
    stage(c, "disk image", NULL, true);

    {
        _cleanup_json_ json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o}", "image_key", image_key, "commit", commit,
                                             "mirror", mirror, "suite", s->suite, "signer", signer_id,
                                             "packages", json_array());
        for (char **v = all; *v; v++) json_array_append_new(json_object_get(j, "packages"), json_string(*v));
        _cleanup_free_ char *txt = sub_json_dump_pretty(j), *jp = sub_path_join(tmp, "image.json");
        if ((r = sub_write_file_new(jp, txt, strlen(txt), 0644, e)) < 0) return r;
    }
    return 0;
}

static int build_image(const vm_ctx *c, const sub_vm_spec *s, const char *repo, const char *commit,
                       const char *mirror, const char *signer_id, const char *image_key, const char *final,
                       sub_err *e) {
    const char *cache = sub_vm_cache_dir();
    int r;
    if ((r = sub_mkdir_p(cache, 0755, e)) < 0 || (r = sub_mkdir_p(debs_dir(), 0755, e)) < 0) return r;
    sweep_builds(cache);
    _cleanup_free_ char *tmp = xasprintf("%s/.build-%.12s-%d", cache, sub_digest_hex(image_key), (int)getpid());
    sub_rm_rf(tmp, NULL);
    if ((r = sub_mkdir_p(tmp, 0700, e)) < 0) return r;
    if ((r = build_steps(c, s, repo, commit, mirror, signer_id, image_key, tmp, e)) < 0) {
        sub_rm_rf(tmp, NULL);
        return r;
    }
    sub_rm_rf(final, NULL);
    if (rename(tmp, final) < 0) {
        r = sub_err_setk(e, SUB_KIND_ENV, -errno, "renaming %s to %s: %m", tmp, final);
        sub_rm_rf(tmp, NULL);
        return r;
    }
    sub_fsync_dir(cache);
    return 0;
}

/* ---- booting ----------------------------------------------------------------------------- */

static bool kvm_works(void) {
    sub_kvm_smoke res;
    if (access("/dev/kvm", R_OK | W_OK) < 0) return false;
    return sub_vm_kvm_smoke(KVM_PROBE_MS, NULL, &res, NULL) == 0 && res.pass;
}

static void remove_runtime(const char *run, bool overlay, int *removed) {
    static const char *const files[] = {"qemu.pid", "qmp.sock", "known_hosts", "vm.json"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *p = sub_path_join(run, files[i]);
        if (unlink(p) == 0 && removed) (*removed)++;
    }
    if (overlay) {
        _cleanup_free_ char *p = sub_path_join(run, "disk.qcow2");
        if (unlink(p) == 0 && removed) (*removed)++;
    }
}

static int boot_vm(const vm_ctx *c, const sub_vm_spec *s, const char *img, const char *run, const char *sshkey,
                   const char *accel, pid_t *pid, sub_err *e) {
    int r;
    _cleanup_free_ char *overlay = sub_path_join(run, "disk.qcow2"), *base = sub_path_join(img, "disk.img");
    if (!sub_path_exists(overlay)) {
        char *qi[] = {"qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", overlay, NULL};
        _cleanup_free_ char *log = sub_path_join(run, "qemu.log");
        if ((r = run_logged(qi, log, false, NULL, NULL, e)) < 0) return r;
    }
    if (!port_free(s->ssh_port))
        return sub_err_setk(e, SUB_KIND_ENV, -EADDRINUSE,
                            "127.0.0.1:%u (ssh_port of %s) is in use by another program: pick another "
                            "ssh_port in the spec, or stop what holds it",
                            s->ssh_port, s->path ? s->path : "the spec");
    unsigned long khz = 0;
    _cleanup_free_ char *t2cache = sub_state_path("tier2/cache");
    if (sub_mkdir_p(t2cache, 0700, NULL) < 0 || sub_vm_tsc_khz(t2cache, &khz, NULL) < 0) khz = 0;
    _cleanup_free_ char *pidf = sub_path_join(run, "qemu.pid"), *qmp = sub_path_join(run, "qmp.sock"),
                       *serial = sub_path_join(run, "serial.log"), *log = sub_path_join(run, "qemu.log"),
                       *pub = xasprintf("%s.pub", sshkey),
                       *kernel = sub_path_join(img, "vmlinuz"), *initrd = sub_path_join(img, "initrd.img"),
                       *smp = xasprintf("%u", s->cpus), *mem = xasprintf("%" PRIu64 "M", s->memory_bytes >> 20),
                       *append = khz ? xasprintf("root=/dev/vda rw console=ttyS0 tsc_early_khz=%lu", khz)
                                     : xstrdup("root=/dev/vda rw console=ttyS0"),
                       *drive = xasprintf("file=%s,if=virtio,format=qcow2,cache=unsafe", overlay),
                       *net = xasprintf("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:%u-:22", s->ssh_port),
                       *fwk = xasprintf("name=opt/substrate/authorized_keys,file=%s", pub),
                       *fwu = xasprintf("name=opt/substrate/user,string=%s", s->nusers ? s->users[0].name : "root"),
                       *qmparg = xasprintf("unix:%s,server=on,wait=off", qmp),
                       *serarg = xasprintf("file:%s", serial),
                       *accarg = streq(accel, "kvm") ? xstrdup("kvm") : xstrdup("tcg,thread=multi");
    unlink(serial);
    unlink(qmp);
    unlink(pidf);
    char *argv[] = {"qemu-system-x86_64", "-name", s->name, "-machine", "q35", "-accel", accarg,
                    /* under TCG, qemu's default model without SVM: "max" exposes AVX2 and
                     * more, whose emulation (qemu 7.2) broke glibc in the guest here (a wedged
                     * guest, an initramfs whose programs abort); and no emulated SVM, so the
                     * guest's Tier-2 jobs run on TCG, nested, instead of a TCG-backed KVM */
                    "-cpu", streq(accel, "kvm") ? "host" : "qemu64,svm=off", "-smp", smp, "-m", mem,
                    "-nodefaults", "-no-user-config", "-display", "none", "-serial", serarg,
                    "-kernel", kernel, "-initrd", initrd, "-append", append, "-drive", drive,
                    "-netdev", net, "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci",
                    "-fw_cfg", fwk, "-fw_cfg", fwu, "-qmp", qmparg, "-pidfile", pidf, "-daemonize", NULL};
    _cleanup_free_ char *what = xasprintf("qemu %s, %u CPUs, %" PRIu64 " MiB, ssh on 127.0.0.1:%u", accel, s->cpus,
                                          s->memory_bytes >> 20, s->ssh_port);
    stage(c, "boot", what, false);
    if ((r = run_logged(argv, log, true, NULL, NULL, e)) < 0) return r;
    if (!(*pid = qemu_pid(run)))
        return sub_err_setk(e, SUB_KIND_ENV, -EIO, "qemu daemonized but %s/qemu.pid names no qemu of ours", run);
    return 0;
}

/* Wait for the guest to print its host key on the serial console; pin it. */
int sub_vm_hostkey_parse(const char *buf, size_t len, uint16_t port, char **known_hosts, sub_err *e) {
    static const char mark[] = HOSTKEY_MARK;
    const size_t mlen = sizeof(mark) - 1;
    const char *hit = NULL;
    for (const char *p = buf; len - (size_t)(p - buf) >= mlen;) {
        const char *q = memmem(p, len - (size_t)(p - buf), mark, mlen);
        if (!q) break;
        hit = q;
        p = q + 1;
    }
    if (!hit) return 0;
    const char *v = hit + mlen, *end = buf + len, *eol = v;
    while (eol < end && *eol != '\n' && *eol != '\r') eol++;
    if (eol == end) return 0; /* the line is still being written */
    size_t n = (size_t)(eol - v);
    for (size_t i = 0; i < n; i++)
        if (!isprint((unsigned char)v[i]))
            return sub_err_setk(e, SUB_KIND_ENV, -EPROTO,
                                "the guest printed a host key line we cannot read (a control byte at %zu of %zu)", i, n);
    /* "ssh-ed25519 " then the base64 of the 51-byte key blob: string "ssh-ed25519", string <32 bytes> */
    static const char type[] = "ssh-ed25519 ";
    static const unsigned char blob_head[] = {0, 0, 0, 11, 's', 's', 'h', '-', 'e', 'd', '2', '5', '5', '1', '9', 0, 0, 0, 32};
    const size_t tlen = sizeof(type) - 1;
    size_t klen = 0; /* up to a blank: a comment after the key is ignored */
    while (tlen + klen < n && v[tlen + klen] != ' ') klen++;
    if (n <= tlen || memcmp(v, type, tlen) || klen != 68)
        return sub_err_setk(e, SUB_KIND_ENV, -EPROTO, "the guest printed a host key that is not an ed25519 key: %.*s",
                            (int)(n > 200 ? 200 : n), v);
    _cleanup_free_ unsigned char *blob = NULL;
    size_t blen = 0;
    if (sub_b64_decode(v + tlen, klen, NULL, "the guest's host key", &blob, &blen, NULL) < 0 || blen != 51 ||
        memcmp(blob, blob_head, sizeof(blob_head)))
        return sub_err_setk(e, SUB_KIND_ENV, -EPROTO, "the guest's host key is not the base64 of an ed25519 key: %.*s",
                            (int)klen, v + tlen);
    *known_hosts = xasprintf("[127.0.0.1]:%u ssh-ed25519 %.*s\n", port, (int)klen, v + tlen);
    return 1;
}

static int pin_hostkey(const vm_ctx *c, const char *run, uint16_t port, int64_t deadline, sub_err *e) {
    _cleanup_free_ char *serial = sub_path_join(run, "serial.log"), *kh = sub_path_join(run, "known_hosts");
    bool panic = false;
    while (now_ms() < deadline) {
        _cleanup_free_ char *txt = NULL;
        size_t len;
        if (sub_read_file(serial, SERIAL_MAX, &txt, &len, NULL) == 0) {
            _cleanup_free_ char *line = NULL;
            int r = sub_vm_hostkey_parse(txt, len, port, &line, e);
            if (r < 0) return r;
            if (r > 0) {
                stage(c, "host key", "read from the serial console and pinned", true);
                return sub_write_file_atomic(kh, line, strlen(line), 0600, e);
            }
            static const char oops[] = "Kernel panic - not syncing";
            if ((panic = memmem(txt, len, oops, sizeof(oops) - 1) != NULL)) break; /* no key will come */
        }
        if (!qemu_pid(run)) break;
        sleep_ms(500);
    }
    _cleanup_free_ char *tail = file_tail(serial, 30);
    sub_err_setk(e, SUB_KIND_ENV, -ETIMEDOUT, "%s before the guest printed its SSH host key on the serial console (%s)",
                 panic ? "the guest's kernel panicked" : qemu_pid(run) ? "timed out" : "qemu exited", serial);
    if (tail) sub_err_detail(e, "%s", tail);
    return -ETIMEDOUT;
}

/* ssh to the guest, ended by timeout(1) after limit_s seconds (0: no limit);
 * a guest that stops answering ends it within a minute (ServerAlive). */
static char **ssh_argv(const char *run, const char *key, const char *user, uint16_t port, const char *cmd,
                       int64_t limit_s) {
    _cleanup_free_ char *kh = sub_path_join(run, "known_hosts"), *lim = xasprintf("%lld", (long long)limit_s);
    char **v = NULL;
    if (limit_s > 0) {
        strv_push(&v, "timeout");
        strv_push(&v, "-k");
        strv_push(&v, "5");
        strv_push(&v, lim);
    }
    const char *fixed[] = {"ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                           "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
                           "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"};
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++) strv_push(&v, fixed[i]);
    _cleanup_free_ char *kho = xasprintf("UserKnownHostsFile=%s", kh), *p = xasprintf("%u", port),
                       *dest = xasprintf("%s@127.0.0.1", user);
    strv_push(&v, "-o");
    strv_push(&v, kho);
    strv_push(&v, "-i");
    strv_push(&v, key);
    strv_push(&v, "-p");
    strv_push(&v, p);
    strv_push(&v, dest);
    strv_push(&v, cmd);
    return v;
}

/* Run cmd in the guest, at most until deadline (CLOCK_MONOTONIC ms; 0: no limit). */
static int ssh_run(const char *run, const char *key, const char *user, uint16_t port, const char *cmd,
                   int64_t deadline, char **out, int *st, sub_err *e) {
    int64_t left = deadline ? (deadline - now_ms()) / 1000 : 0;
    _cleanup_strv_ char **argv = ssh_argv(run, key, user, port, cmd, deadline ? (left > 1 ? left : 1) : 0);
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdin_fd = SUB_FD_NULL;
    po.stderr_fd = SUB_FD_STDOUT;
    return sub_run_capture(argv, &po, 1u << 20, out, st, e);
}

static int wait_ssh(const vm_ctx *c, const char *run, const char *key, const char *user, uint16_t port,
                    int64_t deadline, sub_err *e) {
    stage(c, "ssh", "waiting for `ssh ... true`", false);
    _cleanup_free_ char *last = NULL;
    while (now_ms() < deadline && qemu_pid(run)) {
        _cleanup_free_ char *out = NULL;
        int st, r;
        if ((r = ssh_run(run, key, user, port, "true", deadline, &out, &st, e)) < 0) return r;
        if (st == 0) {
            stage(c, "ssh", NULL, true);
            return 0;
        }
        free(last);
        last = out ? sub_utf8_sanitize(out) : NULL;
        out = NULL;
        sleep_ms(1000);
    }
    _cleanup_free_ char *serial = sub_path_join(run, "serial.log"), *tail = file_tail(serial, 30);
    sub_err_setk(e, SUB_KIND_ENV, -ETIMEDOUT, "%s before SSH answered on 127.0.0.1:%u (last: %s)",
                 qemu_pid(run) ? "timed out" : "qemu exited", port, last && *last ? last : "no answer");
    if (tail) sub_err_detail(e, "serial console (%s):\n%s", serial, tail);
    return -ETIMEDOUT;
}

/* The services: wait for the unit that reconciles them, then align each. */
static int check_services(const vm_ctx *c, const sub_vm_spec *s, const char *run, const char *key, int64_t deadline,
                          char ***lines, sub_err *e) {
    if (!s->services[0]) return 0;
    const char *user = s->users[0].name;
    stage(c, "services", "reconciled at boot by substrate-services.service; align", false);
    _cleanup_free_ char *out = NULL;
    int st, r;
    /* `systemctl start` of an activating oneshot waits for it; it fails when the unit did */
    while (true) {
        free(out);
        out = NULL;
        if ((r = ssh_run(run, key, user, s->ssh_port, "sudo systemctl start substrate-services.service", deadline,
                         &out, &st, e)) < 0)
            return r;
        if (st == 0) break;
        if (now_ms() >= deadline || st != 255) {
            _cleanup_free_ char *j = NULL;
            int st2;
            ssh_run(run, key, user, s->ssh_port,
                    "sudo journalctl -b --no-pager -n 40 -u substrate-services -u substrate -u substrate-registry",
                    now_ms() + 60000, &j, &st2, NULL);
            sub_err_setk(e, SUB_KIND_ENV, -EIO, "the services did not start inside the VM (%s)",
                         out && *out ? out : "substrate-services.service failed");
            if (j) sub_err_detail(e, "%s", j);
            return -EIO;
        }
        sleep_ms(2000);
    }
    for (char **v = s->services; *v; v++) {
        _cleanup_free_ char *cmd = xasprintf("sudo substrate align /etc/substrate/manifests/%s.service.yaml", *v),
                           *o2 = NULL;
        if ((r = ssh_run(run, key, user, s->ssh_port, cmd, now_ms() + 120000, &o2, &st, e)) < 0) return r;
        char *nl = o2 ? strchr(o2, '\n') : NULL;
        if (nl) *nl = '\0';
        _cleanup_free_ char *line = xasprintf("%s: %s", *v, o2 && *o2 ? o2 : "no answer");
        strv_push(lines, line);
        if (st != 0)
            return sub_err_setk(e, SUB_KIND_CHECK, -EIO, "service %s inside the VM is not aligned: %s", *v,
                                o2 && *o2 ? o2 : "align printed nothing");
    }
    stage(c, "services", NULL, true);
    return 0;
}

/* ---- stopping ---------------------------------------------------------------------------- */

static int qmp_powerdown(const char *run) {
    _cleanup_free_ char *qmp = sub_path_join(run, "qmp.sock");
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (fd < 0 || strlen(qmp) >= sizeof a.sun_path) return -1;
    strcpy(a.sun_path, qmp);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) return -1;
    char buf[4096];
    if (read(fd, buf, sizeof buf) <= 0) return -1; /* the greeting */
    static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
    static const char down[] = "{\"execute\":\"system_powerdown\"}\n";
    if (sub_write_all(fd, caps, strlen(caps)) < 0 || read(fd, buf, sizeof buf) <= 0) return -1;
    if (sub_write_all(fd, down, strlen(down)) < 0 || read(fd, buf, sizeof buf) <= 0) return -1;
    return 0;
}

/* Stop the qemu of run (power-down, then SIGKILL at the deadline); returns
 * once the process is gone (not only its pidfile). */
static void stop_qemu(const char *run, uint32_t deadline_s, sub_vm_destroy_result *r) {
    pid_t pid = qemu_pid(run);
    if (!pid) return;
    r->was_running = true;
    int64_t end = now_ms() + (int64_t)deadline_s * 1000;
    if (qmp_powerdown(run) == 0)
        while (now_ms() < end && is_our_qemu(pid, run)) sleep_ms(250);
    if (is_our_qemu(pid, run)) {
        kill(pid, SIGKILL);
        r->killed = true;
        for (int i = 0; i < 200 && is_our_qemu(pid, run); i++) sleep_ms(50);
    } else {
        r->graceful = true;
    }
}

int sub_vm_destroy(const char *name, bool purge, uint32_t deadline_s, sub_vm_destroy_result *r, sub_err *e) {
    int64_t t0 = now_ms();
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    _cleanup_free_ char *run = sub_vm_run_dir(name), *rec = sub_path_join(run, "vm.json");
    _cleanup_json_ json_t *j = NULL;
    const char *img = NULL;
    if (sub_path_exists(rec) && sub_json_load_file(rec, VM_RECORD_MAX, &j, NULL) == 0)
        img = json_string_value(json_object_get(j, "image_key"));
    pid_t pid = qemu_pid(run);
    stop_qemu(run, deadline_s ? deadline_s : DEFAULT_STOP_S, r);
    if (pid && is_our_qemu(pid, run))
        return sub_err_setk(e, SUB_KIND_ENV, -EBUSY, "the VM's qemu (pid %d) is still running after SIGKILL",
                            (int)pid);
    remove_runtime(run, true, &r->removed);
    static const char *const more[] = {"serial.log", "qemu.log"};
    for (size_t i = 0; i < ARRAY_SIZE(more); i++) {
        _cleanup_free_ char *p = sub_path_join(run, more[i]);
        if (unlink(p) == 0) r->removed++;
    }
    if (rmdir(run) < 0 && errno != ENOENT)
        return sub_err_setk(e, SUB_KIND_ENV, -errno, "removing %s: %m (what else is in it?)", run);
    if (purge && img && sub_digest_validate(img, NULL) == 0) {
        _cleanup_free_ char *dir = sub_path_join(sub_vm_cache_dir(), sub_digest_hex(img));
        if (sub_path_exists(dir)) {
            int rr = sub_rm_rf(dir, e);
            if (rr < 0) return rr;
            r->purged = true;
        }
    }
    r->ms = now_ms() - t0;
    return 0;
}

/* ---- provision --------------------------------------------------------------------------- */

void sub_vm_provision_result_done(sub_vm_provision_result *r) {
    free(r->why);
    free(r->ssh_command);
    free(r->run_dir);
    strv_free(r->services);
    memset(r, 0, sizeof *r);
}

static int write_record(const char *run, const sub_vm_spec *s, const char *spec_text, const char *image_key,
                        const char *boot_key, const char *release, const char *commit, const char *accel, sub_err *e) {
    _cleanup_json_ json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:I}", "name", s->name, "image_key",
                                         image_key, "boot_key", boot_key, "release_digest", release, "commit",
                                         commit, "spec", spec_text, "accel", accel, "ssh_port", (int)s->ssh_port,
                                         "user", s->users[0].name, "started", (json_int_t)time(NULL));
    _cleanup_free_ char *txt = sub_json_dump_pretty(j), *p = sub_path_join(run, "vm.json");
    return sub_write_file_atomic(p, txt, strlen(txt), 0600, e);
}

int sub_vm_provision(const sub_vm_provision_opts *o, sub_vm_provision_result *res, sub_err *e) {
    vm_ctx c = {.o = o, .t0 = now_ms()};
    memset(res, 0, sizeof *res);
    int r;
    _cleanup_free_ char *repo = NULL, *spec_path = NULL, *spec_text = NULL, *mirror = NULL, *sshkey = NULL,
                       *kh = NULL, *disk = NULL;
    if (o->repo_dir)
        repo = xstrdup(o->repo_dir);
    else if ((r = sub_git_default_repo(&repo, e)) < 0)
        return r;
    spec_path = o->spec_path ? xstrdup(o->spec_path) : sub_path_join(repo, SUB_VM_DEFAULT_SPEC);
    _cleanup_vm_spec_ sub_vm_spec s = {0};
    size_t len;
    if ((r = sub_read_file(spec_path, SUB_VM_SPEC_MAX, &spec_text, &len, e)) < 0) {
        if (r == -ENOENT && e) e->kind = SUB_KIND_INPUT; /* a spec named that is not there: usage */
        return r;
    }
    if ((r = sub_vm_spec_parse(spec_text, len, spec_path, repo, &s, e)) < 0) return r;
    if (!s.nusers)
        return sub_err_setr(e, SUB_R_BAD_VM_SPEC, SUB_KIND_INPUT, -EINVAL,
                            "%s: users: the VM needs at least one user (the platform SSH key logs in as the first)",
                            spec_path);
    snprintf(res->name, sizeof res->name, "%s", s.name);
    int64_t deadline = c.t0 + (int64_t)(o->deadline_s ? o->deadline_s : DEFAULT_DEADLINE_S) * 1000;

    /* the inputs: commit, mirror, platform key */
    char commit[41];
    bool dirty = false;
    _cleanup_free_ char *dirt = NULL;
    if ((r = sub_git_resolve(repo, "HEAD", commit, e)) < 0) return r;
    if ((r = sub_git_is_dirty(repo, &dirty, &dirt, e)) < 0) return r;
    if (dirty)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "the working tree %s has uncommitted changes (%s): the golden VM is built from an "
                            "exact commit; commit or stash them first. Nothing was done.",
                            repo, dirt ? dirt : "?");
    snprintf(res->commit, sizeof res->commit, "%s", commit);
    for (const char *need[] = {"mmdebstrap", "mke2fs", "qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen", "curl",
                               NULL},
                    **p = need;
         *p; p++)
        if (!sub_have_program(*p))
            return sub_err_setk(e, SUB_KIND_ENV, -ENOENT, "%s is not installed: run scripts/install-deps", *p);
    mirror = apt_mirror();
    char release[SUB_DIGEST_MAX], signer[SUB_DIGEST_MAX] = "";
    if ((r = release_digest(mirror, s.suite, release, e)) < 0) return r;
    bool created;
    if ((r = sub_platform_key_ensure(sub_state_dir(), &created, signer, e)) < 0) return r;
    _cleanup_free_ char *passf = sub_state_path("keys/cosign.pass");
    if (!sub_path_exists(passf))
        return sub_err_setk(e, SUB_KIND_ENV, -ENOENT,
                            "%s is missing: provision-vm signs the VM's images with the platform key and "
                            "needs its passphrase in that file (0600)",
                            passf);
    if ((r = sub_vm_spec_image_key(&s, release, commit, res->image_key, e)) < 0) return r;
    sub_vm_spec_boot_key(&s, res->boot_key);
    if ((r = ssh_keypair(&sshkey, e)) < 0) return r;

    /* what runs now */
    _cleanup_free_ char *run = sub_vm_run_dir(s.name), *rec = sub_path_join(run, "vm.json");
    if ((r = sub_mkdir_p(run, 0700, e)) < 0) return r;
    res->run_dir = xstrdup(run);
    _cleanup_json_ json_t *old = NULL;
    if (sub_path_exists(rec)) sub_json_load_file(rec, VM_RECORD_MAX, &old, NULL);
    const char *old_image = old ? json_string_value(json_object_get(old, "image_key")) : NULL;
    const char *old_boot = old ? json_string_value(json_object_get(old, "boot_key")) : NULL;
    pid_t pid = qemu_pid(run);
    bool same_image = old_image && streq(old_image, res->image_key);
    bool same_boot = old_boot && streq(old_boot, res->boot_key);

    /* why: the spec diff against what runs */
    if (old) {
        const char *ot = json_string_value(json_object_get(old, "spec"));
        sub_vm_spec os = {0};
        if (ot && sub_vm_spec_parse(ot, strlen(ot), "the running VM's spec", repo, &os, NULL) == 0) {
            sub_vm_inputs oi = {json_string_value(json_object_get(old, "release_digest")),
                                json_string_value(json_object_get(old, "commit"))};
            sub_vm_inputs ni = {release, commit};
            sub_vm_spec_diff(&os, &oi, &s, &ni, &res->why);
        }
        sub_vm_spec_done(&os);
    }

    _cleanup_free_ char *img = sub_path_join(sub_vm_cache_dir(), sub_digest_hex(res->image_key)),
                        *imgjson = sub_path_join(img, "image.json");
    if (pid && same_image && same_boot) {
        snprintf(res->action, sizeof res->action, "unchanged");
        free(res->why);
        res->why = xstrdup("the VM runs and the spec, the mirror's Release file and the commit are unchanged");
    } else {
        /* the image: cached, or built now */
        bool have = sub_path_exists(imgjson);
        if (have) {
            _cleanup_json_ json_t *ij = NULL;
            const char *isigner = NULL;
            if (sub_json_load_file(imgjson, VM_RECORD_MAX, &ij, NULL) == 0)
                isigner = json_string_value(json_object_get(ij, "signer"));
            if (!isigner || !streq(isigner, signer)) have = false; /* the platform key changed: re-sign */
        }
        if (!have) {
            if ((r = build_image(&c, &s, repo, commit, mirror, signer, res->image_key, img, e)) < 0) return r;
            res->built = true;
        } else {
            stage(&c, "image", "cached", true);
        }
        const char *action = !old ? "created" : !pid ? "started" : same_image ? "restarted" : "rebuilt";
        if (pid) {
            stage(&c, "stop", "the running VM, to replace it", false);
            sub_vm_destroy_result dr = {0};
            stop_qemu(run, DEFAULT_STOP_S, &dr);
            stage(&c, "stop", dr.graceful ? "powered off" : "killed", true);
        }
        remove_runtime(run, !same_image, NULL);
        snprintf(res->action, sizeof res->action, "%s", action);
        const char *accel = kvm_works() ? "kvm" : "tcg";
        snprintf(res->accel, sizeof res->accel, "%s", accel);
        if ((r = boot_vm(&c, &s, img, run, sshkey, accel, &res->pid, e)) < 0) goto failed;
        if ((r = write_record(run, &s, spec_text, res->image_key, res->boot_key, release, commit, accel, e)) < 0)
            goto failed;
        if ((r = pin_hostkey(&c, run, s.ssh_port, deadline, e)) < 0) goto failed;
        if (!res->why) res->why = xstrdup(!old ? "no VM was recorded" : "the VM was not running");
    }
    if (!res->accel[0] && old) snprintf(res->accel, sizeof res->accel, "%s", json_string_value(json_object_get(old, "accel")) ?: "");
    res->pid = qemu_pid(run);
    res->ssh_port = s.ssh_port;
    if ((r = wait_ssh(&c, run, sshkey, s.users[0].name, s.ssh_port, deadline, e)) < 0) goto failed;
    if ((r = check_services(&c, &s, run, sshkey, deadline, &res->services, e)) < 0) goto failed;
    kh = sub_path_join(run, "known_hosts");
    res->ssh_command = xasprintf("ssh -i %s -o UserKnownHostsFile=%s -p %u %s@127.0.0.1", sshkey, kh, s.ssh_port,
                                 s.users[0].name);
    disk = sub_path_join(img, "disk.img");
    res->image_bytes = allocated_bytes(disk);
    res->ms = now_ms() - c.t0;
    return 0;
failed:
    /* leave the VM as it is for a look (destroy-vm removes it); say where its console is */
    {
        _cleanup_free_ char *serial = sub_path_join(run, "serial.log");
        sub_err_prefix(e, "provisioning %s (console log %s)", s.name, serial);
    }
    return r;
}

/* ---- running a command inside ------------------------------------------------------------ */

int sub_vm_ssh(const char *name, const char *cmd, char **out, int *status, sub_err *e) {
    _cleanup_free_ char *run = sub_vm_run_dir(name), *rec = sub_path_join(run, "vm.json"),
                        *key = sub_state_path("vm/ssh/id_ed25519");
    _cleanup_json_ json_t *j = NULL;
    int r;
    if (!qemu_pid(run))
        return sub_err_setk(e, SUB_KIND_ENV, -ESRCH, "the VM %s is not running (platform/vm/provision-vm starts it)",
                            name);
    if ((r = sub_json_load_file(rec, VM_RECORD_MAX, &j, e)) < 0) return r;
    const char *user = json_string_value(json_object_get(j, "user"));
    json_int_t port = json_integer_value(json_object_get(j, "ssh_port"));
    if (!user || port < 1 || port > 65535)
        return sub_err_setk(e, SUB_KIND_ENV, -EINVAL, "%s names no user or SSH port: provision the VM again", rec);
    if (out) return ssh_run(run, key, user, (uint16_t)port, cmd, 0, out, status, e);
    _cleanup_strv_ char **argv = ssh_argv(run, key, user, (uint16_t)port, cmd, 0);
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdin_fd = SUB_FD_NULL;
    return sub_run(argv, &po, status, e);
}
