/* substrate login REGISTRY [-u USER] [--password-stdin]; substrate logout REGISTRY */
#include "cli.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/registry.h"
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define SECRET_MAX 4096

static void login_help(FILE *f) {
    fputs("Usage: substrate login REGISTRY [-u USER] [--password-stdin] [--json]\n"
          "\n"
          "Check a user name and password against the registry REGISTRY (host:port) and store\n"
          "them for later pushes and pulls. They are checked the way the registry asks: HTTP\n"
          "basic, or a token from its token service (Bearer); nothing is stored when the\n"
          "registry refuses them. A registry that does not ask for credentials at all cannot\n"
          "check them: they are stored anyway, with a warning.\n"
          "\n"
          "They are stored, mode 0600, in $REGISTRY_AUTH_FILE or else $SUBSTRATE_STATE/auth.json,\n"
          "in the format of ~/.docker/config.json and containers' auth.json:\n"
          "  {\"auths\": {\"host:port\": {\"auth\": base64(USER:PASSWORD)}}}\n"
          "Other entries and keys of that file are kept.\n"
          "\n"
          "Where credentials come from when Substrate talks to a registry, first match wins:\n"
          "SUBSTRATE_REGISTRY_USER / SUBSTRATE_REGISTRY_PASSWORD, then the file above, then\n"
          "${XDG_RUNTIME_DIR}/containers/auth.json, then ~/.docker/config.json.\n"
          "\n"
          "Options:\n"
          "  -u, --username USER  the user (default: asked on the terminal)\n"
          "  --password-stdin     read the password from standard input (one line; the\n"
          "                       trailing newline is dropped); default: asked on the\n"
          "                       terminal without echo\n"
          "  --json               print {registry, username, file, checked}\n"
          "  -h, --help           show this help\n"
          "\n"
          "Environment: REGISTRY_AUTH_FILE, SUBSTRATE_STATE, SUBSTRATE_CA_FILE,\n"
          "SUBSTRATE_INSECURE_REGISTRIES, SUBSTRATE_REGISTRY_TLS (see README, Remote registries).\n"
          "\n"
          "Exit codes:\n"
          "  0  the registry accepted the credentials; they are stored\n"
          "  2  usage error (no user, no password, no terminal to ask on)\n"
          "  3  the registry refused them, or could not be reached; nothing was stored\n"
          "\n"
          "Examples:\n"
          "  substrate login registry.example.com -u alice\n"
          "  printf '%s\\n' \"$TOKEN\" | substrate login registry.example.com:5000 -u ci "
          "--password-stdin\n",
          f);
}

static void logout_help(FILE *f) {
    fputs("Usage: substrate logout REGISTRY [--json]\n"
          "\n"
          "Remove the stored credentials for REGISTRY (host:port) from $REGISTRY_AUTH_FILE or\n"
          "else $SUBSTRATE_STATE/auth.json (entries written by other tools for the same\n"
          "host:port, with a scheme or path, too). ~/.docker/config.json and\n"
          "${XDG_RUNTIME_DIR}/containers/auth.json are read by Substrate but never changed.\n"
          "\n"
          "Options:\n"
          "  --json      print {registry, file, removed}\n"
          "  -h, --help  show this help\n"
          "\n"
          "Exit codes:\n"
          "  0  removed\n"
          "  2  usage error, or there were no stored credentials for REGISTRY in that file\n"
          "  3  the file could not be read or written\n"
          "\n"
          "Examples:\n"
          "  substrate logout registry.example.com\n",
          f);
}

/* One line from the terminal (echo off when secret). */
static int tty_line(const char *prompt, bool secret, char *buf, size_t cap) {
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return -ENXIO;
    struct termios old, quiet;
    bool have_t = secret && tcgetattr(fd, &old) == 0;
    if (have_t) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
        quiet.c_lflag |= ICANON | ECHONL;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    int r = write(fd, prompt, strlen(prompt)) < 0 ? -errno : 0;
    size_t n = 0;
    char c;
    while (r == 0) {
        ssize_t k = read(fd, &c, 1);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0 || c == '\n') break;
        if (n < cap - 1) buf[n++] = c;
    }
    if (n && buf[n - 1] == '\r') n--;
    buf[n] = 0;
    if (have_t) tcsetattr(fd, TCSAFLUSH, &old);
    close(fd);
    return r;
}

static bool valid_registry(const char *cmd, const char *arg) {
    sub_err e = {0};
    if (strchr(arg, '/') || sub_reg_addr_split(arg, NULL, NULL, &e) < 0) {
        cli_usage_error(cmd, "\"%s\" is not a registry address: write host[:port], e.g. "
                             "registry.example.com or 127.0.0.1:5000",
                        arg);
        return false;
    }
    return true;
}

int cmd_login(int argc, char **argv) {
    static const struct option opts[] = {
        {"username", required_argument, NULL, 'u'},
        {"password-stdin", no_argument, NULL, 'P'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *user = NULL;
    bool from_stdin = false, json = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "u:h", opts, NULL)) != -1) {
        switch (c) {
        case 'u': user = optarg; break;
        case 'P': from_stdin = true; break;
        case 'j': json = true; break;
        case 'h': login_help(stdout); return 0;
        default: return cli_usage_error("login", "unknown option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("login", "expected exactly one REGISTRY (host:port)");
    const char *host = argv[optind];
    if (!valid_registry("login", host)) return SUB_EXIT_USAGE;
    char ubuf[256];
    if (!user || !*user) {
        if (tty_line("Username: ", false, ubuf, sizeof ubuf) < 0)
            return cli_usage_error("login",
                                   "no user given and no terminal to ask on: pass -u USER");
        user = ubuf;
        if (!*user) return cli_usage_error("login", "no user name entered");
    }
    char *pass = xmalloc(SECRET_MAX);
    pass[0] = 0;
    int rc = 0;
    sub_err e = {0};
    sub_reg *r = NULL;
    char *file = NULL;
    if (from_stdin) {
        size_t n = 0;
        while (n < SECRET_MAX - 1) {
            ssize_t k = read(0, pass + n, SECRET_MAX - 1 - n);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) break;
            n += (size_t)k;
        }
        pass[n] = 0;
        if (n && pass[n - 1] == '\n') pass[--n] = 0;
        if (n && pass[n - 1] == '\r') pass[--n] = 0;
        if (strchr(pass, '\n'))
            rc = cli_usage_error("login", "--password-stdin: expected one line, got several");
    } else if (tty_line("Password: ", true, pass, SECRET_MAX) < 0) {
        rc = cli_usage_error("login", "no terminal to ask for the password on: pass "
                                      "--password-stdin");
    }
    if (rc == 0 && !*pass) rc = cli_usage_error("login", "empty password");
    if (rc) goto out;

    sub_reg_opts ro = {.host = host, .username = user, .password = pass};
    if (sub_reg_new(&ro, &r, &e) < 0 || sub_reg_ping(r, &e) < 0) {
        sub_err_prefix(&e, "login to %s failed, nothing was stored", host);
        rc = cli_fail("login", &e);
        goto out;
    }
    bool checked = sub_reg_credentials_used(r);
    if (sub_reg_auth_store(host, user, pass, &file, &e) < 0) {
        rc = cli_fail("login", &e);
        goto out;
    }
    if (!checked)
        fprintf(stderr,
                "substrate login: warning: %s did not ask for credentials, so they could not be "
                "checked; stored anyway\n",
                host);
    if (json) {
        _cleanup_json_ json_t *j = json_pack("{s:s,s:s,s:s,s:b}", "registry", host, "username",
                                             user, "file", file, "checked", checked);
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    } else {
        printf("Login succeeded: credentials of %s for %s (%s) stored in %s\n", user, host,
               sub_reg_scheme(r), file);
    }
out:
    sub_reg_free(r);
    free(file);
    explicit_bzero(pass, SECRET_MAX);
    free(pass);
    return rc;
}

int cmd_logout(int argc, char **argv) {
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool json = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'h': logout_help(stdout); return 0;
        default: return cli_usage_error("logout", "unknown option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("logout", "expected exactly one REGISTRY (host:port)");
    const char *host = argv[optind];
    if (!valid_registry("logout", host)) return SUB_EXIT_USAGE;
    sub_err e = {0};
    _cleanup_free_ char *file = NULL;
    int r = sub_reg_auth_remove(host, &file, &e);
    if (r < 0) return cli_fail("logout", &e);
    if (json) {
        _cleanup_json_ json_t *j =
            json_pack("{s:s,s:s,s:b}", "registry", host, "file", file, "removed", r == 1);
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    }
    if (r == 0) {
        fprintf(stderr, "substrate logout: error: no stored credentials for %s in %s\n", host,
                file);
        return SUB_EXIT_USAGE;
    }
    if (!json) printf("Removed the credentials for %s from %s\n", host, file);
    return 0;
}
