/* A small YAML reader for Substrate's declarative files (the golden VM spec;
 * the same shape as the service manifest reader in lib/tier1/svc-manifest.c).
 *
 * libyaml's event parser builds a tree first, each node keeping its line and
 * column, and refuses what these files never hold before any field is read:
 * bytes that are not UTF-8, a NUL, anchors and aliases, tags, a second
 * document, a key that is not a string, nesting deeper than 16. Fields are
 * then read from the tree by name with the sub_y* getters below.
 *
 * Errors: every refusal is -EINVAL, input class, with the reason the caller
 * put in the context, and a message "FILE:LINE:COL: FIELD: what is wrong
 * (what would be right)". Out of memory inside libyaml is -ENOMEM, env class.
 *
 * Ownership: the tree is the caller's (sub_ynode_free, _cleanup_ynode_); the
 * strings the getters return point into it. */
#pragma once
#include "error.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { SUB_Y_SCALAR, SUB_Y_SEQ, SUB_Y_MAP } sub_ynode_type;

typedef struct sub_ynode {
    sub_ynode_type type;
    bool plain;              /* a plain (unquoted) scalar: the only kind that can be null or a bool */
    char *value;             /* scalars: the text, NUL-terminated (never holds a NUL) */
    size_t line, col;        /* 1-based, where the node starts */
    struct sub_ynode **kids; /* sequence items; mapping keys and values alternating */
    size_t n, cap;
} sub_ynode;

void sub_ynode_free(sub_ynode *n);
static inline void sub_ynode_freep(sub_ynode **n) { sub_ynode_free(*n); }
#define _cleanup_ynode_ _cleanup_(sub_ynode_freep)

#define SUB_YSHOW_MAX 120

typedef struct sub_yctx {
    const char *file;  /* for messages */
    const char *doc;   /* what the file is, for messages: "VM spec" */
    sub_reason reason; /* recorded on every refusal */
    const char *one_doc_hint; /* added to "a second YAML document" (" (one service per file)"), or NULL */
    sub_err *e;
    unsigned nshow;
    char show[2][SUB_YSHOW_MAX + 8];
} sub_yctx;

/* Parse text (a UTF-8 byte order mark is skipped) into *root (NULL for an empty document). */
int sub_yaml_load(sub_yctx *c, const char *text, size_t len, sub_ynode **root);

/* A value quoted for a message: control characters escaped, long ones cut. The
 * result lives in c until the call after next. */
const char *sub_yshow(sub_yctx *c, const char *s);
/* A refusal at a node (at may be NULL: no position), or at line:col (line 0: no position).
 * field may be NULL. */
int sub_ybad(sub_yctx *c, const sub_ynode *at, const char *field, const char *fmt, ...)
    _printf_(4, 5);
int sub_yfail_at(sub_yctx *c, size_t line, size_t col, const char *field, const char *fmt, ...)
    _printf_(5, 6);

bool sub_ynull(const sub_ynode *n);          /* ~, null, or nothing */
const char *sub_ykind(const sub_ynode *n);   /* "a list", "a mapping", "a string", "no value" */

/* "parent.key" / "parent[i]" into buf */
const char *sub_yfield(char *buf, size_t n, const char *parent, const char *key);
const char *sub_yindex(char *buf, size_t n, const char *parent, size_t i);

int sub_yget_str(sub_yctx *c, const sub_ynode *n, const char *field, const char **out);
int sub_yget_map(sub_yctx *c, const sub_ynode *n, const char *field);
int sub_yget_seq(sub_yctx *c, const sub_ynode *n, const char *field);
int sub_yget_bool(sub_yctx *c, const sub_ynode *n, const char *field, bool *out);
/* A whole decimal number from min to max. */
int sub_yget_uint(sub_yctx *c, const sub_ynode *n, const char *field, uint64_t min, uint64_t max,
                  uint64_t *out);
/* One of names[0..count): its index. */
int sub_yget_enum(sub_yctx *c, const sub_ynode *n, const char *field, const char *const *names,
                  size_t count, int *out);
/* A mapping with a fixed set of keys (at most 32): vals[i] is the value of known[i], NULL when
 * absent. Unknown keys (with a "did you mean" for a near miss) and repeated keys are refused at
 * the key. */
int sub_yread_map(sub_yctx *c, const sub_ynode *map, const char *field, const char *const *known,
                  size_t nknown, const sub_ynode **vals);

/* "4Gi", "512Mi", "1G", "1048576": K M G T are powers of 1000, Ki Mi Gi Ti of 1024. NULL when
 * fine, else a phrase saying what is wrong. */
const char *sub_parse_size(const char *s, uint64_t *out);
/* A whole decimal number at most max: NULL, or why not ("is not a whole number"). */
const char *sub_yparse_uint(const char *s, uint64_t max, uint64_t *out);
/* The index of s in names, or -1. */
int sub_yfind_name(const char *s, const char *const *names, size_t n);
/* "parent.key" for a key read from the file: escaped, and cut when long. */
const char *sub_ykey_field(char *buf, size_t n, const char *parent, const char *key);
