/* The process a container or a microVM job runs, from what a document says
 * (a Tier-1 manifest, a Tier-2 jobspec) over the image's config — one rule
 * for both tiers, as in Kubernetes:
 *   argv  command given: command + args (the image's cmd is dropped);
 *         else the image's entrypoint + (args if given, else the image's cmd)
 *   env   the image's env in its order, values overridden by the document's,
 *         then the document's new keys in its order; PATH defaults as in the
 *         engines when neither sets it
 *   user  the document's, else the image's, as numeric "uid[:gid]" (a lone
 *         uid runs with gid = uid); names are not looked up in the image
 *   cwd   the document's, else the image's WorkingDir, else "/"; absolute
 * Refusals are input errors with the caller's reason, prefixed "<what>: ".
 * Ownership: sub_proc_spec owns its strings; sub_proc_spec_done frees them. */
#pragma once
#include "error.h"
#include "manifest.h"
#include <stdbool.h>
#include <stdint.h>

#define SUB_DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

typedef struct sub_proc_spec_in {
    const char *what;          /* "service hello", "jobspec j.json": message prefix */
    const char *doc;           /* "manifest", "jobspec": where the fix goes */
    sub_reason reason;         /* SUB_R_BAD_MANIFEST, SUB_R_BAD_JOBSPEC */
    char *const *command, *const *args, *const *env; /* NULL or NULL-terminated */
    const char *user, *workdir; /* NULL: the image's */
} sub_proc_spec_in;

typedef struct sub_proc_spec {
    char **argv;               /* NULL-terminated, at least one non-empty element */
    char **env;                /* NULL-terminated "KEY=VALUE" */
    uint32_t uid, gid;
    bool user_from_doc;        /* the document named the user (not the image) */
    bool user_given;           /* the document or the image named one (else 0:0) */
    char *cwd;
} sub_proc_spec;

int sub_proc_spec_resolve(const sub_proc_spec_in *in, const sub_image_config *img, sub_proc_spec *out,
                          sub_err *e);
void sub_proc_spec_done(sub_proc_spec *p);
static inline void sub_proc_spec_donep(sub_proc_spec *p) { sub_proc_spec_done(p); }
#define _cleanup_proc_spec_ _cleanup_(sub_proc_spec_donep)
