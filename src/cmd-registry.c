/* substrate registry start|stop|status */
#include "cli.h"
#include "substrate/config.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/regserver.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void help(FILE *f) {
    fputs(
        "Usage: substrate registry start [--htpasswd FILE]\n"
        "       substrate registry stop\n"
        "       substrate registry status [--json]\n"
        "\n"
        "Run the local OCI registry: Debian's docker-registry (CNCF distribution 2.8) on a\n"
        "loopback address, with a generated config and its storage under the state directory:\n"
        "  $SUBSTRATE_STATE/registry/config.yml     generated config\n"
        "  $SUBSTRATE_STATE/registry/data/          image storage\n"
        "  $SUBSTRATE_STATE/registry/registry.pid   pid of the daemon\n"
        "  $SUBSTRATE_STATE/registry/registry.log   its output\n"
        "\n"
        "start   Start the registry on $SUBSTRATE_REGISTRY and wait until /v2/ answers. "
        "Idempotent:\n"
        "        when the registry of this state directory already runs there, nothing happens.\n"
        "        The address must be on loopback (127.0.0.0/8, localhost or [::1]): the registry\n"
        "        is never reachable from other machines. Prints the address and pid.\n"
        "stop    Stop the registry this state directory started: the recorded pid is signalled\n"
        "        (SIGTERM, SIGKILL after 10 s) only if it is still docker-registry running with\n"
        "        our config; a stale pid file is removed and nothing is signalled.\n"
        "        When no registry of this state directory runs but something holds the address\n"
        "        (another state directory's registry, another program), nothing is stopped and\n"
        "        stop fails (exit 3) naming it: its pid, and its state directory or config.\n"
        "status  Report whether the registry runs and answers; when it does not, what holds\n"
        "        $SUBSTRATE_REGISTRY instead (pid, program, state directory), if anything.\n"
        "\n"
        "Options:\n"
        "  --htpasswd FILE  (start) require HTTP basic auth with the users in FILE (bcrypt,\n"
        "                   made with `htpasswd -Bbn USER PASSWORD > FILE`); clients then need\n"
        "                   SUBSTRATE_REGISTRY_USER and SUBSTRATE_REGISTRY_PASSWORD\n"
        "  --json, -o json  (status) machine-readable output: running, answering,\n"
        "                   address, state_dir, pid\n"
        "  -h, --help       show this help\n"
        "\n"
        "Environment:\n"
        "  SUBSTRATE_STATE     state directory (default /var/lib/substrate)\n"
        "  SUBSTRATE_REGISTRY  registry address host:port (default 127.0.0.1:5000)\n"
        "\n"
        "Exit codes:\n"
        "  0  done (status: running and answering)\n"
        "  1  status: the registry is not running or does not answer\n"
        "  2  usage error, or an address that is not on loopback\n"
        "  3  operational error: docker-registry missing, port in use, start failed, or\n"
        "     stop found the address held by a registry it does not own\n"
        "\n"
        "Examples:\n"
        "  SUBSTRATE_REGISTRY=127.0.0.1:5000 substrate registry start\n"
        "  substrate registry status --json\n"
        "  htpasswd -Bbn alice s3cret > users.htpasswd\n"
        "  substrate registry start --htpasswd users.htpasswd\n"
        "  substrate registry stop\n",
        f);
}

/* A JSON string of s, or null for "": bytes that are not UTF-8 (another
 * program's command line) become '?' rather than failing the output. */
static json_t *jstr(const char *s) {
    if (!s[0]) return json_null();
    json_t *j = json_string(s);
    if (j) return j;
    _cleanup_free_ char *c = xstrdup(s);
    for (char *p = c; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    return json_string(c);
}

static int do_start(int argc, char **argv, sub_regsrv_opts *o) {
    static const struct option opts[] = {
        {"htpasswd", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': o->htpasswd = optarg; break;
        case 'h': help(stdout); return 0;
        default: return cli_bad_option("registry start", argv, opts);
        }
    }
    if (optind < argc) return cli_usage_error("registry", "start takes no arguments");
    sub_err e = {0};
    bool already = false;
    pid_t pid = 0;
    if (sub_regsrv_start(o, &already, &pid, &e) < 0) return cli_fail("registry start", &e);
    printf("registry %s at %s (pid %d)%s; stop it with `substrate registry stop`\n",
           already ? "already running" : "started", o->addr, (int)pid,
           o->htpasswd ? " with basic auth" : "");
    return 0;
}

static int do_stop(int argc, char **argv, sub_regsrv_opts *o) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        if (c == 'h') {
            help(stdout);
            return 0;
        }
        return cli_bad_option("registry stop", argv, opts);
    }
    if (optind < argc) return cli_usage_error("registry", "stop takes no arguments");
    sub_err e = {0};
    sub_regsrv_status st;
    if (sub_regsrv_status_get(o, &st, &e) < 0) return cli_fail("registry stop", &e);
    bool was = false;
    if (sub_regsrv_stop(o, &was, &e) < 0) return cli_fail("registry stop", &e);
    if (was) printf("registry stopped (pid %d)\n", (int)st.pid);
    else if (st.pid)
        printf("registry was not running (removed a stale pid file naming pid %d, which is not our "
               "registry; nothing was signalled)\n",
               (int)st.pid);
    else printf("registry was not running\n");
    return 0;
}

static int do_status(int argc, char **argv, sub_regsrv_opts *o) {
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        CLI_OUTPUT_OPTION,
        {0},
    };
    bool json = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'o':
            if (cli_output_opt("registry status", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        case 'h': help(stdout); return 0;
        default: return cli_bad_option("registry status", argv, opts);
        }
    }
    if (optind < argc) return cli_usage_error("registry", "status takes no arguments");
    sub_err e = {0};
    sub_regsrv_status st;
    if (sub_regsrv_status_get(o, &st, &e) < 0) return cli_fail("registry status", &e);
    _cleanup_free_ char *dir = sub_path_join(o->state_dir, "registry");
    if (json) {
        _cleanup_json_ json_t *j =
            json_pack("{s:b,s:b,s:s,s:s}", "running", st.running, "answering", st.answering,
                      "address", st.addr[0] ? st.addr : o->addr, "state_dir", dir);
        json_object_set_new(j, "pid", st.running ? json_integer(st.pid) : json_null());
        json_t *h = json_null();
        if (!st.running && st.other.held) {
            h = json_pack("{s:b}", "answering", st.other.answering);
            json_object_set_new(h, "pid", st.other.pid ? json_integer(st.other.pid) : json_null());
            json_object_set_new(h, "program", jstr(st.other.program));
            json_object_set_new(h, "cmdline", jstr(st.other.cmdline));
            json_object_set_new(h, "config", jstr(st.other.config));
            json_object_set_new(h, "state_dir", jstr(st.other.state_dir));
        }
        /* who holds the address when the registry of this state dir does not */
        json_object_set_new(j, "port_holder", h);
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    } else if (st.running) {
        printf("registry: running (pid %d) at %s, %s\nstate:    %s\n", (int)st.pid, st.addr,
               st.answering ? "answering" : "NOT answering (see registry.log)", dir);
    } else if (st.other.held) {
        _cleanup_free_ char *who = sub_regsrv_holder_text(o->addr, &st.other);
        printf("registry: not running from this state dir, but %s\nstate:    %s\n", who, dir);
    } else {
        printf("registry: not running (start it with `substrate registry start`)\nstate:    %s\n",
               dir);
    }
    return st.running && st.answering ? SUB_EXIT_OK : SUB_EXIT_CHECK;
}

int cmd_registry(int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        if (c == 'h') {
            help(stdout);
            return 0;
        }
        return cli_bad_option("registry", argv, opts);
    }
    if (optind >= argc) return cli_usage_error("registry", "missing action: start, stop or status");
    const char *action = argv[optind];
    sub_regsrv_opts o = {.state_dir = sub_state_dir(), .addr = sub_registry_addr()};
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    if (!strcmp(action, "start")) return do_start(sub_argc, sub_argv, &o);
    if (!strcmp(action, "stop")) return do_stop(sub_argc, sub_argv, &o);
    if (!strcmp(action, "status")) return do_status(sub_argc, sub_argv, &o);
    return cli_usage_error("registry", "unknown action \"%s\" (use start, stop or status)", action);
}
