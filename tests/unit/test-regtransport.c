/* Transport limits against a slow server in a thread on loopback: a blob body
 * that keeps flowing is not cut by the per-request total timeout (only the
 * stall limit and the deadline bound it), a small request is; the overall
 * deadline stops a running transfer; byte progress reaches the callback. */
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/registry.h"
#include "substrate/regserver.h"
#include "unit.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY_LEN (40 * 1024)
#define PIECES 8
#define PIECE_MS 300 /* 8 x 300 ms: 2.4 s at ~16 KiB/s, well above the 1 KiB/s stall limit */

static char body[BODY_LEN];

/* Answer each request with the body, sent slowly; stop after 3 or when idle 10 s. */
static void *slow_server(void *arg) {
    int ls = *(int *)arg;
    for (int i = 0; i < 3; i++) {
        int c = accept(ls, NULL, NULL);
        if (c < 0) break;
        char req[4096];
        size_t got = 0;
        while (got < sizeof req - 1) {
            ssize_t n = recv(c, req + got, sizeof req - 1 - got, 0);
            if (n <= 0) break;
            got += (size_t)n;
            req[got] = 0;
            if (strstr(req, "\r\n\r\n")) break;
        }
        char hdr[256];
        int hl = snprintf(hdr, sizeof hdr,
                          "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                          "Content-Length: %d\r\nConnection: close\r\n\r\n",
                          BODY_LEN);
        bool ok = send(c, hdr, (size_t)hl, MSG_NOSIGNAL) == hl;
        for (int p = 0; ok && p < PIECES; p++) {
            struct timespec ts = {0, PIECE_MS * 1000000L};
            nanosleep(&ts, NULL);
            size_t sz = BODY_LEN / PIECES;
            ok = send(c, body + (size_t)p * sz, sz, MSG_NOSIGNAL) == (ssize_t)sz;
        }
        close(c);
    }
    return NULL;
}

static int calls;
static uint64_t last_done, last_total;
static void on_bytes(void *ud, uint64_t done, uint64_t total) {
    (void)ud;
    calls++;
    last_done = done;
    last_total = total;
}

TEST(regtransport_flowing_blob_vs_total_timeout_and_deadline) {
    for (size_t i = 0; i < sizeof body; i++) body[i] = (char)(i * 7 + 3);
    sub_err e = {0};
    char digest[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf(body, sizeof body, digest, &e), &e);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(ls >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    struct timeval idle = {.tv_sec = 10};
    setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
    CHECK(bind(ls, (struct sockaddr *)&a, sizeof a) == 0 && listen(ls, 4) == 0 &&
          getsockname(ls, (struct sockaddr *)&a, &al) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, slow_server, &ls) == 0);
    _cleanup_free_ char *addr = xasprintf("127.0.0.1:%d", ntohs(a.sin_port));

    sub_reg *r = NULL;
    sub_reg_opts o = {.host = addr, .timeout_s = 1};
    CHECK_OK(sub_reg_new(&o, &r, &e), &e);
    if (r) {
        /* 1. a blob body into a file: 2.4 s against a 1 s request timeout, still whole */
        sub_reg_set_progress(r, on_bytes, NULL);
        _cleanup_free_ char *dst = sub_path_join(unit_tmpdir(), "blob");
        CHECK_OK(sub_reg_blob_get_file(r, "unit/slow", digest, BODY_LEN, dst, &e), &e);
        _cleanup_free_ char *back = NULL;
        size_t blen = 0;
        CHECK_OK(sub_read_file(dst, BODY_LEN, &back, &blen, &e), &e);
        CHECK(back && blen == BODY_LEN && !memcmp(back, body, blen));
        CHECK(calls >= 2); /* progress while it flowed, not only at the end */
        CHECK_INT(last_done, BODY_LEN);
        CHECK_INT(last_total, BODY_LEN);
        sub_reg_set_progress(r, NULL, NULL);

        /* 2. the same bytes as a small in-memory request: the total timeout applies */
        char *buf = NULL;
        CHECK_INT(sub_reg_blob_get_buf(r, "unit/slow", digest, BODY_LEN, &buf, &blen, &e),
                  -ETIMEDOUT);
        CHECK(strstr(e.msg, "did not finish GET within 1 s") != NULL);
        free(buf);

        /* 3. the overall deadline stops a flowing blob */
        sub_reg_set_deadline(r, 1);
        _cleanup_free_ char *dst2 = sub_path_join(unit_tmpdir(), "blob2");
        CHECK_INT(sub_reg_blob_get_file(r, "unit/slow", digest, BODY_LEN, dst2, &e), -ETIMEDOUT);
        CHECK(strstr(e.msg, "overall time limit of 1 s") != NULL);
        CHECK(!sub_path_exists(dst2));
        sub_reg_set_deadline(r, 0);
        sub_reg_free(r);
    }
    pthread_join(th, NULL);
    close(ls);
}
