/* 401 challenges (see client-internal.h): Basic from the configured
 * credentials; Bearer with a token from the challenge's realm (anonymous, or
 * with the credentials as HTTP basic), cached per realm+service+scope until
 * it expires. The realm is fetched under the same network policy as the
 * registry (reg_net_opts): https, or http only to loopback or an
 * insecure-listed host. */
#include "client-internal.h"
#include "substrate/json.h"
#include "version.h"
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define TOKEN_BODY_MAX (1u << 20)
#define TOKEN_MAX (64u << 10)
#define TOKEN_DEFAULT_TTL 60

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
        else if (kl == 5 && !strncasecmp(k, "error", 5))
            snprintf(c->error, sizeof c->error, "%.63s", val);
    }
}

/* ---- token cache ------------------------------------------------------------------------ */

static int64_t now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static void token_clear(reg_token *t) {
    free(t->key);
    if (t->token) {
        explicit_bzero(t->token, strlen(t->token));
        free(t->token);
    }
    memset(t, 0, sizeof *t);
}

void reg_tokens_free(sub_reg *r) {
    r->token = NULL;
    for (size_t i = 0; i < REG_TOKEN_CACHE; i++) token_clear(&r->tokens[i]);
}

reg_token *reg_token_find(sub_reg *r, const char *key) {
    int64_t now = now_s();
    for (size_t i = 0; i < REG_TOKEN_CACHE; i++) {
        reg_token *t = &r->tokens[i];
        if (!t->key || strcmp(t->key, key) != 0) continue;
        if (t->expires > now) return t;
        if (r->token == t->token) r->token = NULL;
        token_clear(t);
    }
    return NULL;
}

reg_token *reg_token_put(sub_reg *r, const char *key, char *token, long ttl) {
    reg_token *slot = NULL;
    for (size_t i = 0; i < REG_TOKEN_CACHE && !slot; i++) /* the same scope: replace it */
        if (r->tokens[i].key && !strcmp(r->tokens[i].key, key)) slot = &r->tokens[i];
    for (size_t i = 0; i < REG_TOKEN_CACHE && !slot; i++)
        if (!r->tokens[i].key) slot = &r->tokens[i];
    if (!slot) { /* full: drop the one that expires first */
        slot = &r->tokens[0];
        for (size_t i = 1; i < REG_TOKEN_CACHE; i++)
            if (r->tokens[i].expires < slot->expires) slot = &r->tokens[i];
    }
    if (r->token == slot->token) r->token = NULL;
    token_clear(slot);
    /* renew a little early so a token does not expire on the way */
    long margin = ttl >= 30 ? 10 : ttl / 3;
    slot->key = xstrdup(key);
    slot->token = token;
    slot->expires = now_s() + ttl - margin;
    return slot;
}

/* ---- token fetch ------------------------------------------------------------------------ */

int reg_parse_token_response(const char *body, size_t len, char **token, long *expires_in,
                             sub_err *e) {
    *token = NULL;
    *expires_in = TOKEN_DEFAULT_TTL;
    json_t *j = NULL;
    int rr = sub_json_parse(body, len, TOKEN_BODY_MAX, "token response", &j, e);
    if (rr < 0) return rr;
    const char *t = json_string_value(json_object_get(j, "token"));
    if (!t || !*t) t = json_string_value(json_object_get(j, "access_token"));
    if (!t || !*t) {
        json_decref(j);
        return sub_err_set(e, -EPROTO, "the token response has neither \"token\" nor "
                                       "\"access_token\"");
    }
    size_t tl = strlen(t);
    bool ok = tl <= TOKEN_MAX;
    for (size_t i = 0; ok && i < tl; i++)
        if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f) ok = false;
    if (!ok) {
        json_decref(j);
        return sub_err_set(e, -EPROTO,
                           "the token in the token response is not a printable ASCII string of "
                           "at most %u bytes",
                           TOKEN_MAX);
    }
    json_t *ex = json_object_get(j, "expires_in");
    if (json_is_integer(ex) && json_integer_value(ex) > 0)
        *expires_in = json_integer_value(ex) > 86400 * 365 ? 86400 * 365
                                                           : (long)json_integer_value(ex);
    *token = xstrdup(t);
    json_decref(j);
    return 0;
}

static size_t on_token_body(char *p, size_t sz, size_t nm, void *ud) {
    sub_buf *b = ud;
    size_t n = sz * nm;
    if (b->len + n > TOKEN_BODY_MAX) return 0;
    sub_buf_append(b, p, n);
    return n;
}

static void url_param(sub_buf *u, const char *name, const char *value, size_t vlen) {
    char *esc = curl_easy_escape(NULL, value, (int)vlen);
    sub_buf_printf(u, "%c%s=%s", strchr(sub_buf_str(u), '?') ? '&' : '?', name, esc ? esc : "");
    curl_free(esc);
}

/* GET realm?service=&scope=... (basic credentials when configured). */
static int fetch_token(sub_reg *r, const challenge *ch, char **token, long *ttl, sub_err *e) {
    sub_buf u = SUB_BUF_INIT;
    sub_buf_puts(&u, ch->realm);
    if (ch->service[0]) url_param(&u, "service", ch->service, strlen(ch->service));
    for (const char *s = ch->scope; *s;) { /* several scopes: one parameter each */
        size_t n = strcspn(s, " ");
        if (n) url_param(&u, "scope", s, n);
        s += n;
        while (*s == ' ') s++;
    }
    if (r->username) url_param(&u, "account", r->username, strlen(r->username));
    _cleanup_free_ char *url = sub_buf_detach(&u, NULL);
    CURL *c = r->curl;
    curl_easy_reset(c);
    int rr = reg_net_opts(r, c, url, e);
    if (rr < 0) {
        sub_err_prefix(e, "cannot get a token for the registry at %s", r->host);
        return rr;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    sub_buf body = SUB_BUF_INIT;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, r->timeout_s < 60 ? r->timeout_s : 60L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "substrate/" SUBSTRATE_VERSION);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_token_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    if (r->username) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, r->username);
        curl_easy_setopt(c, CURLOPT_PASSWORD, r->password);
    }
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
    if (cc != CURLE_OK) {
        const char *tls = reg_tls_problem(cc);
        if (tls)
            rr = sub_err_setk(e, SUB_KIND_ENV, -EACCES,
                              "cannot get a token for the registry at %s from %s: %s; if it uses "
                              "a private CA, trust it with SUBSTRATE_CA_FILE=ca.pem",
                              r->host, ch->realm, tls);
        else
            rr = sub_err_setk(e, SUB_KIND_ENV, cc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -EIO,
                              "cannot get a token for the registry at %s from its token service "
                              "%s",
                              r->host, ch->realm);
        sub_err_detail(e, "curl: %s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    if (code == 401 || code == 403) {
        if (r->username)
            rr = sub_err_setk(e, SUB_KIND_ENV, -EACCES,
                              "the token service %s of the registry at %s rejected the "
                              "credentials of user \"%s\" (HTTP %ld; from %s): check them, or "
                              "run `substrate login %s`",
                              ch->realm, r->host, r->username, code, r->cred_source, r->host);
        else
            rr = sub_err_setk(e, SUB_KIND_ENV, -EACCES,
                              "the registry at %s requires authentication (its token service %s "
                              "answered HTTP %ld to an anonymous request): run `substrate login "
                              "%s`, or set SUBSTRATE_REGISTRY_USER and SUBSTRATE_REGISTRY_PASSWORD",
                              r->host, ch->realm, code, r->host);
        if (e) e->http_status = code;
        goto out;
    }
    if (code != 200) {
        rr = sub_err_setk(e, SUB_KIND_ENV, -EIO,
                          "the token service %s of the registry at %s answered HTTP %ld", ch->realm,
                          r->host, code);
        if (e) e->http_status = code;
        goto out;
    }
    rr = reg_parse_token_response(body.data ? body.data : "", body.len, token, ttl, e);
    if (rr < 0) sub_err_prefix(e, "token service %s of the registry at %s", ch->realm, r->host);
out:
    sub_buf_free(&body);
    return rr;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "repository:x:push,pull repository:a:pull" -> "repository:a:pull repository:x:pull,push":
 * actions and scopes sorted, so the same access gives the same cache key whatever order
 * the registry listed them in (docker-registry's order varies from one answer to the next). */
char *reg_scope_canonical(const char *scope) {
    char *words[64], *acts[16];
    size_t nw = 0;
    _cleanup_free_ char *dup = xstrdup(scope ? scope : "");
    for (char *sp, *w = strtok_r(dup, " ", &sp); w && nw < 64; w = strtok_r(NULL, " ", &sp)) {
        char *colon = strrchr(w, ':');
        if (!colon) {
            words[nw++] = xstrdup(w);
            continue;
        }
        *colon = 0;
        size_t na = 0;
        for (char *sa, *a = strtok_r(colon + 1, ",", &sa); a && na < 16;
             a = strtok_r(NULL, ",", &sa))
            acts[na++] = a;
        qsort(acts, na, sizeof *acts, cmp_str);
        sub_buf b = SUB_BUF_INIT;
        sub_buf_printf(&b, "%s:", w);
        for (size_t i = 0; i < na; i++)
            if (!i || strcmp(acts[i], acts[i - 1]) != 0)
                sub_buf_printf(&b, "%s%s", i ? "," : "", acts[i]);
        words[nw++] = sub_buf_detach(&b, NULL);
    }
    qsort(words, nw, sizeof *words, cmp_str);
    sub_buf out = SUB_BUF_INIT;
    sub_buf_puts(&out, "");
    for (size_t i = 0; i < nw; i++) {
        sub_buf_printf(&out, "%s%s", i ? " " : "", words[i]);
        free(words[i]);
    }
    return sub_buf_detach(&out, NULL);
}

/* "pull" / "push" / "pull and push" for messages, from "repository:x:pull,push". */
static const char *scope_words(const char *scope) {
    bool pull = strstr(scope, "pull") != NULL, push = strstr(scope, "push") != NULL;
    if (pull && push) return "pull and push";
    if (push) return "push";
    if (pull) return "pull";
    return "access";
}

/* A 401 arrived. *retry = true when the request should be sent again with
 * the authentication now configured on r. */
int reg_handle_challenge(sub_reg *r, xfer *x, bool *retry, sub_err *e) {
    *retry = false;
    challenge c;
    reg_parse_challenge(x->www_auth, &c);
    int rr;
    if (!r->username && !r->creds_files_read) {
        r->creds_files_read = true;
        if ((rr = reg_creds_files(r->host, &r->username, &r->password, &r->cred_source, e)) < 0)
            return rr;
    }
    if (!strcasecmp(c.scheme, "Basic")) {
        if (!r->username) {
            rr = sub_err_setk(
                e, SUB_KIND_ENV, -EACCES,
                "the registry at %s requires authentication (HTTP 401, realm \"%s\"): run "
                "`substrate login %s`, or set SUBSTRATE_REGISTRY_USER and "
                "SUBSTRATE_REGISTRY_PASSWORD",
                r->host, c.realm, r->host);
        } else if (r->auth != AUTH_BASIC) {
            r->auth = AUTH_BASIC;
            *retry = true;
            return 0;
        } else {
            rr = sub_err_setk(e, SUB_KIND_ENV, -EACCES,
                              "the registry at %s rejected the credentials of user \"%s\" (HTTP "
                              "401; from %s): check them, or run `substrate login %s`",
                              r->host, r->username, r->cred_source, r->host);
        }
    } else if (!strcasecmp(c.scheme, "Bearer")) {
        if (!c.realm[0]) {
            rr = sub_err_setk(e, SUB_KIND_ENV, -EPROTO,
                              "the registry at %s asks for a bearer token but names no realm to "
                              "get it from (WWW-Authenticate: %.200s)",
                              r->host, x->www_auth);
            reg_http_detail(x, e);
            return rr;
        }
        _cleanup_free_ char *scope = reg_scope_canonical(c.scope);
        _cleanup_free_ char *key = xasprintf("%s %s %s", c.realm, c.service, scope);
        reg_token *t = reg_token_find(r, key);
        if (t && !(r->auth == AUTH_BEARER && r->token == t->token)) {
            r->auth = AUTH_BEARER; /* a cached token for this scope, not tried on this request */
            r->token = t->token;
            *retry = true;
            return 0;
        }
        if (t && r->token == t->token && x->token_fetched &&
            strcasecmp(c.error, "insufficient_scope") != 0) {
            rr = sub_err_setk(e, SUB_KIND_ENV, -EACCES,
                              "the registry at %s refused the token its token service %s has "
                              "just issued for scope \"%s\"%s%s: do the registry and the token "
                              "service agree on the service name, issuer and signing certificate?",
                              r->host, c.realm, scope, c.error[0] ? ": " : "", c.error);
            reg_http_detail(x, e);
            return rr;
        }
        if (t && strcasecmp(c.error, "insufficient_scope") != 0) {
            /* refused as invalid (expired early, revoked): drop it and get a new one;
             * reg_perform sends a request at most twice */
            if (r->token == t->token) r->token = NULL;
            token_clear(t);
            t = NULL;
        }
        if (t) {
            /* the token for exactly this scope was sent and is not enough */
            _cleanup_free_ char *who = r->username ? xasprintf("user \"%s\"", r->username)
                                                   : xstrdup("anonymous access");
            rr = sub_err_setk(e, SUB_KIND_ENV, -EACCES,
                              "the registry at %s refused the token for scope \"%s\" "
                              "(insufficient_scope): %s may not %s there; the token service "
                              "granted less than asked for",
                              r->host, c.scope, who, scope_words(c.scope));
            reg_http_detail(x, e);
            return rr;
        }
        char *tok = NULL;
        long ttl = TOKEN_DEFAULT_TTL;
        if ((rr = fetch_token(r, &c, &tok, &ttl, e)) < 0) return rr;
        t = reg_token_put(r, key, tok, ttl);
        x->token_fetched = true;
        r->auth = AUTH_BEARER;
        r->token = t->token;
        *retry = true;
        return 0;
    } else {
        rr = sub_err_setk(e, SUB_KIND_ENV, -EACCES,
                          "the registry at %s refused access (HTTP 401) without a usable "
                          "authentication challenge (WWW-Authenticate: %s)",
                          r->host, x->www_auth ? x->www_auth : "none");
    }
    reg_http_detail(x, e);
    return rr;
}

bool sub_reg_credentials_used(const sub_reg *r) {
    return r->username && (r->auth == AUTH_BASIC || r->auth == AUTH_BEARER);
}
