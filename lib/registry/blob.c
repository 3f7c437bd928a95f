/* The distribution API's blobs (see registry.h): HEAD, streamed GET into a
 * temporary file renamed into place only once size and digest match, and the
 * POST+PUT monolithic upload whose Location must stay on the registry. */
#include "client-internal.h"
#include "substrate/fs.h"
#include "substrate/layout.h"
#include "substrate/residue.h"
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

int sub_reg_blob_exists(sub_reg *r, const char *repo, const char *digest, uint64_t *size,
                        sub_err *e) {
    int rr;
    if ((rr = reg_check_repo(repo, e)) < 0 || (rr = sub_digest_validate(digest, e)) < 0) return rr;
    xfer x;
    xfer_init(&x, "HEAD");
    x.url = reg_url(r, "/v2/%s/blobs/%s", repo, digest);
    x.what = xasprintf("blob %s", digest);
    rr = reg_perform(r, &x, e);
    if (rr < 0) goto out;
    if (x.status == 404) rr = 0;
    else if (x.status == 200) {
        if (size) *size = x.clen >= 0 ? (uint64_t)x.clen : 0;
        rr = 1;
    } else rr = reg_status_error(r, &x, e);
out:
    xfer_done(&x);
    return rr;
}

static int blob_get(sub_reg *r, xfer *x, const char *repo, const char *digest, sub_err *e) {
    int rr = reg_perform(r, x, e);
    if (rr < 0) return rr;
    if (x->status == 404) {
        rr = sub_err_setk(e, SUB_KIND_CHECK, -ENOENT, "%s is not in repository %s at %s", x->what,
                          repo, r->host);
        reg_http_detail(x, e);
        return rr;
    }
    if (x->status != 200) return reg_status_error(r, x, e);
    if (x->out_expect && x->received != x->out_expect)
        return sub_err_set(e, -EIO,
                           "%s: the registry at %s sent %llu bytes, but its descriptor says %llu "
                           "(truncated transfer); nothing was kept",
                           x->what, r->host, (unsigned long long)x->received,
                           (unsigned long long)x->out_expect);
    char got[SUB_DIGEST_MAX];
    sub_sha256_final(&x->out_hash, got);
    if (strcmp(got, digest) != 0)
        return sub_err_setk(
            e, SUB_KIND_CHECK, -EILSEQ,
            "digest mismatch for %s from %s/%s: expected %s, but the content hashes "
            "to %s; refused, nothing was kept",
            x->what, r->host, repo, digest, got);
    return 0;
}

int sub_reg_blob_get_file(sub_reg *r, const char *repo, const char *digest, uint64_t expected_size,
                          const char *path, sub_err *e) {
    return sub_reg_blob_fetch(r, repo, digest, expected_size, path, 0, e);
}

int sub_reg_blob_fetch(sub_reg *r, const char *repo, const char *digest, uint64_t expected_size,
                       const char *path, unsigned flags, sub_err *e) {
    int rr;
    if ((rr = reg_check_repo(repo, e)) < 0 || (rr = reg_check_sha256(digest, e)) < 0) return rr;
    if (expected_size > r->max_blob)
        return sub_err_set(
            e, -EFBIG, "blob %s is %llu bytes, larger than the limit of %llu bytes; refused",
            digest, (unsigned long long)expected_size, (unsigned long long)r->max_blob);
    /* <path>.part-<pid>-XXXXXX: removed if we are interrupted, swept by the
     * next pull if we are killed (residue.h) */
    _cleanup_free_ char *tmp = NULL;
    _cleanup_free_ char *base = xasprintf("%s" SUB_LAYOUT_TMP_PART, path);
    int fd = sub_residue_mkstemp(base, &tmp, e);
    if (fd < 0) return fd;
    xfer x;
    xfer_init(&x, "GET");
    x.url = reg_url(r, "/v2/%s/blobs/%s", repo, digest);
    x.what = xasprintf("blob %s", digest);
    x.out_fd = fd;
    x.follow_redirects = true; /* blobs may live in object storage; digest-checked below */
    x.out_max = expected_size ? expected_size : r->max_blob;
    x.out_expect = expected_size;
    x.hash_out = true;
    x.report = true;
    rr = blob_get(r, &x, repo, digest, e);
    if (rr == 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0)) {
        int err = errno;
        rr = sub_err_set(e, -err, "cannot store %s at %s: %s%s", x.what, path, strerror(err),
                         sub_io_hint(err));
    }
    if (close(fd) < 0 && rr == 0) {
        int err = errno;
        rr = sub_err_set(e, -err, "cannot store %s at %s: %s%s", x.what, path, strerror(err),
                         sub_io_hint(err));
    }
    if (rr == 0 && rename(tmp, path) < 0) {
        int err = errno;
        rr = sub_err_set(e, -err, "cannot store %s at %s: %s%s", x.what, path, strerror(err),
                         sub_io_hint(err));
    }
    if (rr < 0) unlink(tmp);
    else if (!(flags & SUB_REG_FETCH_NO_DIR_SYNC)) {
        _cleanup_free_ char *d = xstrdup(path);
        sub_fsync_dir(dirname(d));
    }
    sub_residue_forget(tmp);
    xfer_done(&x);
    return rr;
}

int sub_reg_blob_get_buf(sub_reg *r, const char *repo, const char *digest, size_t max, char **out,
                         size_t *len, sub_err *e) {
    int rr;
    if ((rr = reg_check_repo(repo, e)) < 0 || (rr = reg_check_sha256(digest, e)) < 0) return rr;
    xfer x;
    xfer_init(&x, "GET");
    x.url = reg_url(r, "/v2/%s/blobs/%s", repo, digest);
    x.what = xasprintf("blob %s", digest);
    x.out_max = max ? max : 1;
    x.hash_out = true;
    x.follow_redirects = true;
    rr = blob_get(r, &x, repo, digest, e);
    if (rr == 0) *out = sub_buf_detach(&x.mem, len);
    xfer_done(&x);
    return rr;
}

/* The upload URL from a Location header, which must stay on our registry. */
int reg_resolve_location(sub_reg *r, const char *repo, const char *loc, char **out, sub_err *e) {
    if (!loc || !*loc)
        return sub_err_set(e, -EPROTO, "the registry at %s started an upload without a Location",
                           r->host);
    for (const char *p = loc; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return sub_err_set(e, -EPROTO,
                               "the registry at %s sent an upload Location with invalid "
                               "characters",
                               r->host);
    const char *rest = NULL;
    if (str_has_prefix(loc, "http://")) rest = loc + 7;
    else if (str_has_prefix(loc, "https://")) rest = loc + 8;
    else if (str_has_prefix(loc, "//")) rest = loc + 2;
    if (rest) {
        size_t al = strcspn(rest, "/?#");
        if (al != strlen(r->host) || strncasecmp(rest, r->host, al) != 0)
            return sub_err_set(e, -EPERM,
                               "the registry at %s asked us to upload to another address (%.*s); "
                               "refused: Substrate only sends data to the registry it was given",
                               r->host, (int)al, rest);
        *out = xasprintf("%s%s", r->base, rest + al); /* on our scheme, whatever it said */
        return 0;
    }
    if (strstr(loc, "://"))
        return sub_err_set(e, -EPERM,
                           "the registry at %s gave an upload Location with another scheme "
                           "(%.60s); refused",
                           r->host, loc);
    if (loc[0] == '/') *out = xasprintf("%s%s", r->base, loc);
    else *out = xasprintf("%s/v2/%s/blobs/uploads/%s", r->base, repo, loc);
    return 0;
}

/* The bytes sent as `digest` hashed to `sent`. Whether that is the layout's
 * fault (exit 1) is proven by hashing the file again: only a file that does
 * not hash to its digest is a mismatch; otherwise the read was unstable (the
 * file changed during the upload and back, or the storage misbehaved). */
static int sent_mismatch(int fd, const char *src, const char *digest, const char *sent,
                         sub_err *e) {
    char now[SUB_DIGEST_MAX];
    sub_err he = {0};
    if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0 || sub_sha256_fd(fd, src, now, NULL, &he) < 0)
        return sub_err_set(e, -EIO,
                           "uploading %s: the data sent hashed to %s, not %s, and the file cannot "
                           "be read again to tell why: %s",
                           src, sent, digest, he.msg[0] ? he.msg : strerror(errno));
    if (strcmp(now, digest) != 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "digest mismatch uploading %s: expected %s, but the file hashes to %s "
                            "(the layout is corrupt, or the file was changed)",
                            src, digest, now);
    return sub_err_set(e, -EIO,
                       "uploading %s: the data read while sending hashed to %s, but the file "
                       "hashes to %s as expected (did it change during the upload?); try again",
                       src, sent, digest);
}

static int blob_put(sub_reg *r, const char *repo, const char *digest, const void *buf, size_t len,
                    int fd, uint64_t flen, const char *src, sub_err *e) {
    _cleanup_free_ char *loc = NULL;
    int rr = sub_reg_blob_exists(r, repo, digest, NULL, e);
    if (rr != 0) return rr; /* 1: the registry has it, nothing to send */
    xfer x;
    xfer_init(&x, "POST");
    x.url = reg_url(r, "/v2/%s/blobs/uploads/", repo);
    x.what = xasprintf("upload of blob %s", digest);
    x.out_max = 65536;
    rr = reg_perform(r, &x, e);
    if (rr < 0) goto out;
    if (x.status != 202) {
        rr = reg_status_error(r, &x, e);
        sub_err_prefix(e, "cannot start the upload");
        goto out;
    }
    if ((rr = reg_resolve_location(r, repo, x.location, &loc, e)) < 0) goto out;
    char *put_url = xasprintf("%s%cdigest=sha256%%3A%s", loc, strchr(loc, '?') ? '&' : '?',
                              sub_digest_hex(digest));
    xfer_done(&x);
    xfer_init(&x, "PUT");
    x.url = put_url;
    x.what = xasprintf("upload of blob %s", digest);
    x.out_max = 65536;
    if (buf) {
        x.body = buf;
        x.body_len = len;
    } else {
        x.in_fd = fd;
        x.in_len = flen;
        x.hash_in = true;
    }
    x.report = true;
    rr = reg_perform(r, &x, e);
    if (rr < 0) goto out; /* a cut connection, a timeout: operational, never a mismatch */
    /* Only a body sent in full can be said to differ: an upload the registry
     * answered (or broke off) part-way says nothing about the data. */
    bool complete = buf || x.in_off == x.in_len;
    if (x.hash_in && complete) {
        char sent[SUB_DIGEST_MAX];
        sub_sha256_final(&x.in_hash, sent);
        if (strcmp(sent, digest) != 0) {
            rr = sent_mismatch(fd, src, digest, sent, e);
            goto out;
        }
    }
    if (x.status != 201) {
        rr = reg_status_error(r, &x, e);
        sub_err_prefix(e, "the upload was refused");
        goto out;
    }
    if (!complete) {
        rr = sub_err_set(e, -EIO,
                         "%s: the registry at %s accepted the upload after %llu of %llu bytes; "
                         "not trusted, try again",
                         x.what, r->host, (unsigned long long)x.in_off,
                         (unsigned long long)x.in_len);
        goto out;
    }
    const char *hd;
    if ((rr = reg_header_digest(r, &x, &hd, e)) < 0) goto out;
    if (hd && strcmp(hd, digest) != 0) {
        rr = sub_err_setk(
            e, SUB_KIND_CHECK, -EILSEQ,
            "digest mismatch after uploading: expected %s, the registry at %s stored %s", digest,
            r->host, hd);
        goto out;
    }
    rr = 0;
out:
    xfer_done(&x);
    return rr;
}

int sub_reg_blob_put_file(sub_reg *r, const char *repo, const char *digest, const char *path,
                          sub_err *e) {
    int rr;
    if ((rr = reg_check_repo(repo, e)) < 0 || (rr = reg_check_sha256(digest, e)) < 0) return rr;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sub_err_set(e, -errno, "cannot open %s: %m", path);
    struct stat st;
    if (fstat(fd, &st) < 0) return sub_err_set(e, -errno, "cannot stat %s: %m", path);
    if (!S_ISREG(st.st_mode)) return sub_err_set(e, -EINVAL, "%s is not a regular file", path);
    return blob_put(r, repo, digest, NULL, 0, fd, (uint64_t)st.st_size, path, e);
}

int sub_reg_blob_put_buf(sub_reg *r, const char *repo, const char *digest, const void *data,
                         size_t len, sub_err *e) {
    int rr;
    if ((rr = reg_check_repo(repo, e)) < 0 || (rr = reg_check_sha256(digest, e)) < 0) return rr;
    char got[SUB_DIGEST_MAX];
    if ((rr = sub_sha256_buf(data, len, got, e)) < 0) return rr;
    if (strcmp(got, digest) != 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "digest mismatch: the data to upload as %s hashes to %s", digest, got);
    return blob_put(r, repo, digest, data ? data : "", len, -1, 0, "(memory)", e);
}
