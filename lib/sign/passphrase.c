/* Where a key's passphrase comes from (see sign.h for the order). */
#include "sign-internal.h"
#include <fcntl.h>
#include <sodium.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#define CAP (SUB_SIGN_MAX_PASSPHRASE + 3) /* room to notice "too long" and a "\r\n" */

void sub_passphrase_free(sub_passphrase *p) {
    if (!p) return;
    if (p->data) sub_secret_free(p->data, p->len + 1);
    memset(p, 0, sizeof *p);
}

char *sub_key_prefix(const char *key_path) {
    size_t n = strlen(key_path);
    if (n > 4 && str_has_suffix(key_path, ".key")) return xstrndup(key_path, n - 4);
    return xstrdup(key_path);
}

static void set_out(sub_passphrase *out, char *buf, size_t len, sub_pass_source src,
                    const char *origin) {
    /* shrink into an exact-size buffer so free can wipe len + 1 bytes */
    char *d = xmalloc(len + 1);
    memcpy(d, buf, len);
    d[len] = 0;
    out->data = d;
    out->len = len;
    out->source = src;
    snprintf(out->origin, sizeof out->origin, "%s", origin);
}

static void strip_newline(char *buf, size_t *len) {
    if (*len && buf[*len - 1] == '\n') {
        (*len)--;
        if (*len && buf[*len - 1] == '\r') (*len)--;
    }
    buf[*len] = 0;
}

/* Read an already-open passphrase file into buf (CAP bytes). */
static int read_fd(int fd, const char *path, char *buf, size_t *len, sub_err *e) {
    size_t n = 0;
    for (;;) {
        ssize_t k = read(fd, buf + n, CAP - 1 - n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return sub_err_set(e, -errno, "cannot read passphrase file %s: %m", path);
        }
        if (k == 0) break;
        n += (size_t)k;
        if (n >= CAP - 1) break;
    }
    bool more = false;
    if (n >= CAP - 1) { /* full: is there anything beyond what fits? */
        char c;
        ssize_t k;
        do k = read(fd, &c, 1);
        while (k < 0 && errno == EINTR);
        more = k != 0; /* a byte, or an error: never accept a cut-short file */
    }
    strip_newline(buf, &n);
    if (more || n > SUB_SIGN_MAX_PASSPHRASE)
        return sub_err_setk(e, SUB_KIND_INPUT, -E2BIG,
                            "passphrase file %s is longer than %d bytes: is it the right file?",
                            path, SUB_SIGN_MAX_PASSPHRASE);
    *len = n;
    return 0;
}

static int from_file(const char *path, char *buf, size_t *len, sub_err *e) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return sub_err_setk(e, SUB_KIND_INPUT, -err, "cannot open passphrase file %s: %s", path,
                            strerror(err));
    }
    return read_fd(fd, path, buf, len, e);
}

/* <prefix>.pass: 1 found (buf filled), 0 absent, < 0 refused. */
static int from_beside(const char *path, char *buf, size_t *len, sub_err *e) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT) return 0;
        if (err == ELOOP)
            return sub_err_setk(e, SUB_KIND_INPUT, -ELOOP,
                                "refusing passphrase file %s: it is a symbolic link (make it a "
                                "plain file with mode 0600)",
                                path);
        return sub_err_set(e, -err, "cannot open passphrase file %s: %s", path, strerror(err));
    }
    struct stat st;
    if (fstat(fd, &st) < 0) return sub_err_set(e, -errno, "cannot stat %s: %m", path);
    if (!S_ISREG(st.st_mode))
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "refusing passphrase file %s: not a regular file", path);
    if (st.st_uid != geteuid())
        return sub_err_setk(e, SUB_KIND_INPUT, -EPERM,
                            "refusing passphrase file %s: it belongs to uid %u, not to us (uid "
                            "%u); chown it or pass --passphrase-file",
                            path, (unsigned)st.st_uid, (unsigned)geteuid());
    if (st.st_mode & 077)
        return sub_err_setk(e, SUB_KIND_INPUT, -EPERM,
                            "refusing passphrase file %s: mode %04o lets group or others read or "
                            "write it; run `chmod 600 %s`",
                            path, (unsigned)(st.st_mode & 07777), path);
    int r = read_fd(fd, path, buf, len, e);
    return r < 0 ? r : 1;
}

static volatile sig_atomic_t got_signal;
static void on_signal(int s) { got_signal = s; }
static const int prompt_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};

/* One line from the terminal with echo off. Restores the terminal and
 * re-raises a signal that interrupted it. */
static int tty_read(int fd, const char *prompt, char *buf, size_t *len, sub_err *e) {
    struct sigaction sa = {.sa_handler = on_signal}, saved[ARRAY_SIZE(prompt_signals)];
    sigemptyset(&sa.sa_mask); /* no SA_RESTART: read() returns EINTR */
    got_signal = 0;
    for (size_t i = 0; i < ARRAY_SIZE(prompt_signals); i++)
        sigaction(prompt_signals[i], &sa, &saved[i]);
    struct termios old, quiet;
    bool have_t = tcgetattr(fd, &old) == 0;
    if (have_t) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
        quiet.c_lflag |= ICANON | ECHONL;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    int r = 0;
    if (write(fd, prompt, strlen(prompt)) < 0) r = -errno;
    size_t n = 0;
    bool eof = false, toolong = false;
    char c = 0;
    while (r == 0 && !got_signal) {
        ssize_t k = read(fd, &c, 1);
        if (k < 0) {
            if (errno == EINTR) continue;
            r = -errno;
            break;
        }
        if (k == 0) {
            eof = true;
            break;
        }
        if (c == '\n') break;
        if (n < CAP - 1) buf[n++] = c;
        else toolong = true;
    }
    sodium_memzero(&c, sizeof c);
    if (have_t) tcsetattr(fd, TCSAFLUSH, &old);
    for (size_t i = 0; i < ARRAY_SIZE(prompt_signals); i++)
        sigaction(prompt_signals[i], &saved[i], NULL);
    if (got_signal) {
        sodium_memzero(buf, CAP);
        raise(got_signal);
        return sub_err_set(e, -EINTR, "interrupted while reading the passphrase");
    }
    if (r < 0) return sub_err_set(e, r, "cannot read the passphrase from the terminal: %s", strerror(-r));
    if (eof && n == 0)
        return sub_err_setk(e, SUB_KIND_INPUT, -ENODATA, "no passphrase entered (end of input)");
    if (n && buf[n - 1] == '\r') n--;
    if (toolong || n > SUB_SIGN_MAX_PASSPHRASE)
        return sub_err_setk(e, SUB_KIND_INPUT, -E2BIG, "the passphrase is longer than %d bytes",
                            SUB_SIGN_MAX_PASSPHRASE);
    buf[n] = 0;
    *len = n;
    return 0;
}

static int from_tty(const sub_pass_opts *o, char *buf, size_t *len, sub_err *e) {
    const char *what = o->what ? o->what : "the key";
    _cleanup_close_ int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        _cleanup_free_ char *beside =
            o->key_prefix ? xasprintf(", or create %s.pass (mode 0600)", o->key_prefix) : xstrdup("");
        return sub_err_setr(e, SUB_R_NO_PASSPHRASE, SUB_KIND_INPUT, -ENXIO,
                            "no passphrase for %s and no terminal to ask on: pass "
                            "--passphrase-file FILE, set SUBSTRATE_PASSPHRASE (or "
                            "COSIGN_PASSWORD)%s",
                            what, beside);
    }
    _cleanup_free_ char *p1 = xasprintf("Passphrase for %s: ", what);
    int r = tty_read(fd, p1, buf, len, e);
    if (r < 0 || !o->confirm) return r;
    if (*len == 0) {
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "refusing an empty passphrase typed at the prompt (it would leave %s "
                            "unprotected); if you really mean it, run with SUBSTRATE_PASSPHRASE=''",
                            what);
    }
    char *again = xmalloc(CAP);
    size_t len2 = 0;
    r = tty_read(fd, "Enter it again: ", again, &len2, e);
    bool same = r == 0 && len2 == *len && memcmp(again, buf, *len) == 0;
    sub_secret_free(again, CAP);
    if (r < 0) return r;
    if (!same)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "the two passphrases differ; nothing was written, try again");
    return 0;
}

int sub_passphrase_get(const sub_pass_opts *o, sub_passphrase *out, sub_err *e) {
    memset(out, 0, sizeof *out);
    char *buf = xmalloc(CAP);
    size_t len = 0;
    int r;
    if (o->file) {
        r = from_file(o->file, buf, &len, e);
        if (r == 0) set_out(out, buf, len, SUB_PASS_FILE, o->file);
        goto done;
    }
    if (o->key_prefix && o->beside_first) {
        _cleanup_free_ char *pp = xasprintf("%s.pass", o->key_prefix);
        r = from_beside(pp, buf, &len, e);
        if (r != 0) {
            if (r > 0) {
                set_out(out, buf, len, SUB_PASS_BESIDE_KEY, pp);
                r = 0;
            }
            goto done;
        }
    }
    /* ours first; then cosign's, so a cosign user's environment just works */
    const char *var = "SUBSTRATE_PASSPHRASE";
    const char *env = getenv(var);
    if (!env) env = getenv(var = "COSIGN_PASSWORD");
    if (env) {
        _cleanup_free_ char *origin = xasprintf("$%s", var);
        len = strlen(env);
        if (len > SUB_SIGN_MAX_PASSPHRASE) {
            r = sub_err_setk(e, SUB_KIND_INPUT, -E2BIG, "%s is longer than %d bytes", origin,
                             SUB_SIGN_MAX_PASSPHRASE);
            goto done;
        }
        set_out(out, (char *)env, len, SUB_PASS_ENV, origin);
        r = 0;
        goto done;
    }
    if (o->key_prefix) {
        _cleanup_free_ char *pp = xasprintf("%s.pass", o->key_prefix);
        r = from_beside(pp, buf, &len, e);
        if (r != 0) {
            if (r > 0) {
                set_out(out, buf, len, SUB_PASS_BESIDE_KEY, pp);
                r = 0;
            }
            goto done;
        }
    }
    r = from_tty(o, buf, &len, e);
    if (r == 0) set_out(out, buf, len, SUB_PASS_PROMPT, "terminal");
done:
    sub_secret_free(buf, CAP);
    return r;
}
