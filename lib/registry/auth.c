/* 401 challenges (see client-internal.h): Basic from the configured
 * credentials; Bearer is refused with the reason until token auth lands. */
#include "client-internal.h"
#include <stdio.h>
#include <string.h>
#include <strings.h>

void reg_parse_challenge(const char *h, challenge *c) {
    memset(c, 0, sizeof *c);
    if (!h) return;
    size_t n = strcspn(h, " \t");
    snprintf(c->scheme, sizeof c->scheme, "%.*s", (int)(n < 15 ? n : 15), h);
    const char *p = h + n;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ',') p++;
        size_t kl = (size_t)(p - k);
        if (*p != '=') continue;
        p++;
        char val[512];
        size_t vl = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) p++;
                if (vl < sizeof val - 1) val[vl++] = *p;
                p++;
            }
            if (*p == '"') p++;
        } else {
            while (*p && *p != ',' && *p != ' ') {
                if (vl < sizeof val - 1) val[vl++] = *p;
                p++;
            }
        }
        val[vl] = 0;
        if (kl == 5 && !strncasecmp(k, "realm", 5)) snprintf(c->realm, sizeof c->realm, "%s", val);
        else if (kl == 7 && !strncasecmp(k, "service", 7))
            snprintf(c->service, sizeof c->service, "%s", val);
        else if (kl == 5 && !strncasecmp(k, "scope", 5))
            snprintf(c->scope, sizeof c->scope, "%s", val);
    }
}

/* A 401 arrived. *retry = true when the request should be sent again with
 * the authentication now configured on r. */
int reg_handle_challenge(sub_reg *r, xfer *x, bool *retry, sub_err *e) {
    *retry = false;
    challenge c;
    reg_parse_challenge(x->www_auth, &c);
    int rr;
    if (!strcasecmp(c.scheme, "Basic")) {
        if (!r->username) {
            rr =
                sub_err_setk(e, SUB_KIND_ENV, -EACCES,
                             "the registry at %s requires authentication (HTTP 401, realm \"%s\"): "
                             "set SUBSTRATE_REGISTRY_USER and SUBSTRATE_REGISTRY_PASSWORD",
                             r->host, c.realm);
        } else if (r->auth != AUTH_BASIC) {
            r->auth = AUTH_BASIC;
            *retry = true;
            return 0;
        } else {
            rr = sub_err_setk(
                e, SUB_KIND_ENV, -EACCES,
                "the registry at %s rejected the credentials of user \"%s\" (HTTP 401): "
                "check SUBSTRATE_REGISTRY_USER and SUBSTRATE_REGISTRY_PASSWORD",
                r->host, r->username);
        }
    } else if (!strcasecmp(c.scheme, "Bearer")) {
        /* The token flow slots in here: GET realm?service=&scope= (with basic
         * credentials if configured), keep the token, set AUTH_BEARER, retry. */
        rr = sub_err_setk(e, SUB_KIND_ENV, -ENOTSUP,
                          "the registry at %s wants a bearer token from %s (service \"%s\"): token "
                          "auth is not supported yet; use anonymous access or HTTP basic auth "
                          "(htpasswd)",
                          r->host, c.realm[0] ? c.realm : "(no realm)", c.service);
    } else {
        rr = sub_err_setk(e, SUB_KIND_ENV, -EACCES,
                          "the registry at %s refused access (HTTP 401) without a usable "
                          "authentication challenge (WWW-Authenticate: %s)",
                          r->host, x->www_auth ? x->www_auth : "none");
    }
    reg_http_detail(x, e);
    return rr;
}
