/* Egress for a job whose jobspec allows destinations (t2-internal.h).
 *
 * Default deny is no NIC at all (qemu -nic none): this file is only used
 * when egress.allow lists something. Then:
 *   - a network namespace of the job's own, named substrate-<tag> (tag: the
 *     job id's random suffix), with ip_forward on inside it only;
 *   - a veth pair: "eth0" inside, sj-<tag> in the uplink namespace (the
 *     host's, or $SUBSTRATE_JOB_UPLINK_NETNS, a named netns), with a /30 per
 *     job slot from 100.127.0.0/16 ($SUBSTRATE_JOB_NET_BASE="A.B" picks
 *     another /16);
 *   - a tap "tap0" inside, opened here (the fd goes to qemu, which needs no
 *     privilege and never sees /dev/net/tun), 10.0.2.2/24; the guest is
 *     10.0.2.15 with 10.0.2.2 as its gateway;
 *   - nftables table inet substrate_<tag> in the job's namespace: forward
 *     policy drop; from tap0 only the listed daddr/tcp dport pairs are
 *     accepted (each with a counter), each probe target that is not allowed
 *     gets a counting drop rule (the host's evidence), everything else a
 *     counting drop; input from the guest is dropped (the namespace itself
 *     offers nothing); what leaves through eth0 is masqueraded.
 * The uplink must route to the allowed destinations; with the host as
 * uplink, reaching beyond the host needs the host's own forwarding and NAT,
 * which Substrate does not change (a host-wide setting).
 * Teardown deletes the namespace (the veth pair and the table go with it;
 * the tap goes when its last fd closes). */
#include "t2-internal.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/proc.h"
#include "substrate/strbuf.h"
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define GUEST_NET "10.0.2.15/24 10.0.2.2"
#define TAP_ADDR "10.0.2.2/24"

static int ip_cmd(sub_err *e, const char *const *args) {
    char *argv[24] = {"ip"};
    size_t n = 1;
    for (; args[n - 1] && n < ARRAY_SIZE(argv) - 1; n++) argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdin_fd = SUB_FD_NULL;
    po.stdout_fd = SUB_FD_NULL;
    _cleanup_free_ char *out = NULL;
    int st = 0;
    po.stderr_fd = SUB_FD_STDOUT;
    int r = sub_run_capture(argv, &po, 4096, &out, &st, e);
    if (r < 0) return r;
    if (st != 0) {
        _cleanup_free_ char *cmd = sub_argv_str(argv);
        return sub_err_setk(e, SUB_KIND_ENV, -EIO, "%s failed (exit %d): %s", cmd, st, out ? out : "");
    }
    return 0;
}
#define IP(e, ...) ip_cmd(e, (const char *const[]){__VA_ARGS__, NULL})

/* The same in the uplink namespace (the host's when none is named). */
static int ip_up(const t2_egress *eg, sub_err *e, const char *const *args) {
    const char *v[24];
    size_t n = 0;
    if (eg->uplink[0]) {
        v[n++] = "-n";
        v[n++] = eg->uplink;
    }
    for (size_t i = 0; args[i] && n < ARRAY_SIZE(v) - 1; i++) v[n++] = args[i];
    v[n] = NULL;
    return ip_cmd(e, v);
}
#define IPUP(eg, e, ...) ip_up(eg, e, (const char *const[]){__VA_ARGS__, NULL})

typedef struct tap_req {
    int nsfd;
    int fd;
    int err;
} tap_req;

/* On a helper thread: enter the namespace, open the tap (the caller's own
 * namespace never changes). */
static void *open_tap(void *arg) {
    tap_req *t = arg;
    if (setns(t->nsfd, CLONE_NEWNET) < 0) {
        t->err = errno;
        return NULL;
    }
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        t->err = errno;
        return NULL;
    }
    struct ifreq ifr = {0};
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    snprintf(ifr.ifr_name, IFNAMSIZ, "tap0");
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        t->err = errno;
        close(fd);
        return NULL;
    }
    t->fd = fd;
    return NULL;
}

static void net_base(unsigned *a, unsigned *b) {
    *a = 100;
    *b = 127;
    const char *s = getenv("SUBSTRATE_JOB_NET_BASE");
    unsigned x, y;
    if (s && sscanf(s, "%u.%u", &x, &y) == 2 && x < 256 && y < 256) {
        *a = x;
        *b = y;
    }
}

static char *rules(const t2_egress *eg, const sub_jobspec *j) {
    sub_buf b = {0};
    sub_buf_printf(&b, "table inet %s {\n chain job_forward {\n  type filter hook forward priority 0; policy drop;\n"
                       "  ct state established,related accept\n", eg->table);
    for (size_t i = 0; i < j->negress; i++)
        sub_buf_printf(&b, "  iifname \"tap0\" ip daddr %s tcp dport %u counter accept comment \"allow %s:%u\"\n",
                       j->egress[i].host, j->egress[i].port, j->egress[i].host, j->egress[i].port);
    for (size_t i = 0; i < j->nprobes; i++) {
        bool allowed = false;
        for (size_t k = 0; k < j->negress; k++)
            allowed |= !strcmp(j->egress[k].host, j->probes[i].host) && j->egress[k].port == j->probes[i].port;
        if (allowed) continue;
        sub_buf_printf(&b, "  iifname \"tap0\" ip daddr %s tcp dport %u counter drop comment \"probe %s:%u\"\n",
                       j->probes[i].host, j->probes[i].port, j->probes[i].host, j->probes[i].port);
    }
    sub_buf_printf(&b, "  iifname \"tap0\" counter drop comment \"deny\"\n }\n"
                       " chain job_input {\n  type filter hook input priority 0; policy drop;\n"
                       "  ct state established,related accept\n  iifname \"lo\" accept\n }\n"
                       " chain job_postrouting {\n  type nat hook postrouting priority 100; policy accept;\n"
                       "  oifname \"eth0\" masquerade\n }\n}\n");
    return sub_buf_detach(&b, NULL);
}

int t2_egress_setup(const char *tag, unsigned slot, const sub_jobspec *j, t2_egress *eg, sub_err *e) {
    *eg = (t2_egress){.tap_fd = -1};
    snprintf(eg->netns, sizeof eg->netns, "substrate-%s", tag);
    snprintf(eg->veth, sizeof eg->veth, "sj-%.12s", tag);
    snprintf(eg->table, sizeof eg->table, "substrate_%s", tag);
    const char *up = getenv("SUBSTRATE_JOB_UPLINK_NETNS");
    snprintf(eg->uplink, sizeof eg->uplink, "%s", up && *up ? up : "");
    snprintf(eg->mac, sizeof eg->mac, "52:54:00:%02x:%02x:%02x", (slot >> 8) & 0xff, slot & 0xff, 0x15);
    snprintf(eg->guest_net, sizeof eg->guest_net, "%s", GUEST_NET);
    unsigned a, b;
    net_base(&a, &b);
    unsigned s = slot % 16384;
    char upaddr[32], nsaddr[32], gw[32];
    snprintf(upaddr, sizeof upaddr, "%u.%u.%u.%u/30", a, b, s >> 6, (s & 63) * 4 + 1);
    snprintf(gw, sizeof gw, "%u.%u.%u.%u", a, b, s >> 6, (s & 63) * 4 + 1);
    snprintf(nsaddr, sizeof nsaddr, "%u.%u.%u.%u/30", a, b, s >> 6, (s & 63) * 4 + 2);
    if (!sub_have_program("ip") || !sub_have_program("nft"))
        return sub_err_setk(e, SUB_KIND_ENV, -ENOENT, "egress needs `ip` (iproute2) and `nft` (nftables): "
                            "scripts/install-deps installs them");
    int r = IP(e, "netns", "add", eg->netns);
    if (r < 0) return r;
    eg->made = true;
    if ((r = IPUP(eg, e, "link", "add", eg->veth, "type", "veth", "peer", "name", "eth0", "netns", eg->netns)) < 0 ||
        (r = IPUP(eg, e, "addr", "add", upaddr, "dev", eg->veth)) < 0 ||
        (r = IPUP(eg, e, "link", "set", eg->veth, "up")) < 0 ||
        (r = IP(e, "-n", eg->netns, "addr", "add", nsaddr, "dev", "eth0")) < 0 ||
        (r = IP(e, "-n", eg->netns, "link", "set", "eth0", "up")) < 0 ||
        (r = IP(e, "-n", eg->netns, "link", "set", "lo", "up")) < 0 ||
        (r = IP(e, "-n", eg->netns, "route", "add", "default", "via", gw)) < 0)
        return r;
    _cleanup_free_ char *nsp = xasprintf("/run/netns/%s", eg->netns);
    _cleanup_close_ int nsfd = open(nsp, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "%s: %s", nsp, strerror(errno));
    tap_req t = {.nsfd = nsfd, .fd = -1};
    pthread_t th;
    if (pthread_create(&th, NULL, open_tap, &t) != 0) return sub_err_setk(e, SUB_KIND_ENV, -EAGAIN, "pthread_create");
    pthread_join(th, NULL);
    if (t.fd < 0)
        return sub_err_setk(e, SUB_KIND_ENV, -t.err, "opening a tap in %s: %s (is the tun module loaded?)", eg->netns,
                            strerror(t.err));
    eg->tap_fd = t.fd;
    if ((r = IP(e, "-n", eg->netns, "addr", "add", TAP_ADDR, "dev", "tap0")) < 0 ||
        (r = IP(e, "-n", eg->netns, "link", "set", "tap0", "up")) < 0 ||
        (r = IP(e, "netns", "exec", eg->netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")) < 0)
        return r;
    _cleanup_free_ char *rs = rules(eg, j);
    char *argv[] = {"ip", "netns", "exec", eg->netns, "nft", "-f", "-", NULL};
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "pipe: %s", strerror(errno));
    (void)sub_write_all(pfd[1], rs, strlen(rs));
    close(pfd[1]);
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdin_fd = pfd[0];
    po.stdout_fd = SUB_FD_NULL;
    po.stderr_fd = SUB_FD_STDOUT;
    _cleanup_free_ char *out = NULL;
    int st = 0;
    r = sub_run_capture(argv, &po, 4096, &out, &st, e);
    close(pfd[0]);
    if (r == 0 && st != 0) r = sub_err_setk(e, SUB_KIND_ENV, -EIO, "nft -f (job %s) failed: %s", tag, out ? out : "");
    return r;
}

/* {"allow A:P": packets, "probe A:P": packets, "deny": packets} from the
 * table's counters. */
json_t *t2_egress_counters(const t2_egress *eg) {
    json_t *res = json_object();
    if (!eg->made) return res;
    char *argv[] = {"ip", "netns", "exec", (char *)eg->netns, "nft", "-j", "list", "table", "inet", (char *)eg->table,
                    NULL};
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdin_fd = SUB_FD_NULL;
    po.stderr_fd = SUB_FD_NULL;
    _cleanup_free_ char *out = NULL;
    int st = 0;
    if (sub_run_capture(argv, &po, 1u << 20, &out, &st, NULL) < 0 || st != 0 || !out) return res;
    _cleanup_json_ json_t *j = json_loads(out, 0, NULL);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(j, "nftables"), i, it) {
        json_t *rule = json_object_get(it, "rule");
        const char *c = json_string_value(json_object_get(rule, "comment"));
        if (!c) continue;
        size_t k;
        json_t *ex;
        json_array_foreach(json_object_get(rule, "expr"), k, ex) {
            json_t *cnt = json_object_get(ex, "counter");
            if (cnt) json_object_set_new(res, c, json_integer(json_integer_value(json_object_get(cnt, "packets"))));
        }
    }
    return res;
}

void t2_egress_teardown(t2_egress *eg) {
    if (eg->tap_fd >= 0) close(eg->tap_fd);
    eg->tap_fd = -1;
    if (eg->made) (void)IP(NULL, "netns", "del", eg->netns);
    /* deleting the namespace deleted the pair; this is for a pair whose
     * inner end never got there */
    if (eg->made) (void)IPUP(eg, NULL, "link", "del", eg->veth);
}

int t2_egress_residue(const t2_egress *eg) {
    if (!eg->made) return 0;
    int n = 0;
    _cleanup_free_ char *nsp = xasprintf("/run/netns/%s", eg->netns);
    n += sub_path_exists(nsp);
    if (!eg->uplink[0]) {
        _cleanup_free_ char *sys = xasprintf("/sys/class/net/%s", eg->veth);
        n += sub_path_exists(sys);
    } else {
        char *argv[] = {"ip", "-n", (char *)eg->uplink, "link", "show", (char *)eg->veth, NULL};
        sub_proc_opts po = SUB_PROC_OPTS_INIT;
        po.stdin_fd = SUB_FD_NULL;
        po.stdout_fd = SUB_FD_NULL;
        po.stderr_fd = SUB_FD_NULL;
        int st = 1;
        if (sub_run(argv, &po, &st, NULL) == 0 && st == 0) n++;
    }
    return n;
}

int t2_egress_sweep(const char *tag) {
    char ns[80];
    snprintf(ns, sizeof ns, "substrate-%s", tag);
    _cleanup_free_ char *nsp = xasprintf("/run/netns/%s", ns);
    if (!sub_path_exists(nsp)) return 0;
    /* deleting the namespace deletes its veth pair, both ends, and its table */
    (void)IP(NULL, "netns", "del", ns);
    return sub_path_exists(nsp) ? 1 : 0;
}
