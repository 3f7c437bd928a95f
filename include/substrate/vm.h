/* The golden VM: provision (build the image if its key is not cached, boot
 * it, pin its host key, wait for SSH and its services) and destroy.
 *
 * Files:
 *   image cache  $SUBSTRATE_VM_CACHE (default /var/cache/substrate/vm)/<image key hex>/
 *                disk.img (raw ext4, sparse), vmlinuz, initrd.img, image.json;
 *                built in a .build-<hex>-<pid> directory beside it and renamed
 *                into place, so a failed or interrupted build leaves no image
 *   deb cache    $SUBSTRATE_VM_DEBS (default /var/cache/substrate/debs): the
 *                packages mmdebstrap downloaded, handed to the next build
 *   runtime      $SUBSTRATE_STATE/vm/<name>/: vm.json (what runs: keys, spec,
 *                inputs, accelerator, port), qemu.pid, qmp.sock, serial.log,
 *                qemu.log, disk.qcow2 (an overlay on the cached image),
 *                known_hosts (the guest's host key, read from the serial console)
 *   SSH key      $SUBSTRATE_STATE/vm/ssh/id_ed25519{,.pub} (0600), made once on
 *                the host and injected at every boot with fw_cfg
 *
 * Nothing is printed: progress goes to the callback, errors to sub_err. */
#pragma once
#include "digest.h"
#include "error.h"
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SUB_VM_DEFAULT_SPEC "platform/vm/golden.yaml" /* relative to the repo */
#define SUB_VM_DEFAULT_CACHE "/var/cache/substrate/vm"
#define SUB_VM_DEFAULT_DEBS "/var/cache/substrate/debs"

/* A stage starts (done false) or ends (done true); ms is the time since the
 * command began. detail may be NULL. */
typedef void (*sub_vm_progress_fn)(void *ud, const char *stage, const char *detail, bool done, int64_t ms);

typedef struct sub_vm_provision_opts {
    const char *spec_path;    /* NULL: REPO/platform/vm/golden.yaml */
    const char *repo_dir;     /* NULL: sub_git_default_repo() */
    uint32_t deadline_s;      /* boot to SSH and services (0: 900 s) */
    sub_vm_progress_fn progress;
    void *ud;
} sub_vm_provision_opts;

typedef struct sub_vm_provision_result {
    char name[64];
    char action[16];          /* "unchanged", "started", "restarted", "rebuilt", "created" */
    char *why;                /* a sentence: what changed, or why nothing did */
    bool built;               /* the image was built by this run (not taken from the cache) */
    char image_key[SUB_DIGEST_MAX];
    char boot_key[SUB_DIGEST_MAX];
    char commit[41];
    char accel[8];            /* "kvm" or "tcg" */
    pid_t pid;
    uint16_t ssh_port;
    char *ssh_command;        /* how to connect */
    char *run_dir;
    uint64_t image_bytes;     /* disk.img's allocated size */
    char **services;          /* each "NAME: ALIGNED ..." line from inside (NULL-terminated) */
    int64_t ms;
} sub_vm_provision_result;

int sub_vm_provision(const sub_vm_provision_opts *o, sub_vm_provision_result *r, sub_err *e);
void sub_vm_provision_result_done(sub_vm_provision_result *r);

typedef struct sub_vm_destroy_result {
    char name[64];
    bool was_running;         /* a qemu of ours ran */
    bool graceful;            /* it powered off within the deadline */
    bool killed;              /* it had to be killed */
    bool purged;              /* a cached image was removed */
    int removed;              /* runtime files removed */
    int64_t ms;
} sub_vm_destroy_result;

/* Stop and remove the VM named name (ACPI power-down over QMP, SIGKILL after
 * deadline_s; 0: 120 s); purge also removes its cached image. Idempotent: no
 * VM is success with nothing done. */
int sub_vm_destroy(const char *name, bool purge, uint32_t deadline_s, sub_vm_destroy_result *r, sub_err *e);

/* Run cmd (a shell command line) inside the running VM name over SSH, as
 * the spec's first user, checking the pinned host key. With out, stdout and
 * stderr are captured (at most 1 MiB; caller frees); without, they are ours.
 * *status is ssh's exit status (255: SSH itself failed). */
int sub_vm_ssh(const char *name, const char *cmd, char **out, int *status, sub_err *e);

/* The guest's SSH host key, as its vm-boot unit prints it on the serial
 * console: a line "substrate-vm hostkey ssh-ed25519 <base64>". buf is the
 * console so far (len bytes; it may hold NULs and partial lines). The last
 * complete such line counts. 1: *known_hosts is the known_hosts line to pin
 * ("[127.0.0.1]:PORT ssh-ed25519 <base64>\n", caller frees); 0: no complete
 * line yet (keep reading); -EPROTO: the line is there but is not an
 * ed25519 public key (e says what it holds). Pure: provision-vm's reader
 * and tests/fuzz/fuzz-vm-hostkey call it. */
int sub_vm_hostkey_parse(const char *buf, size_t len, uint16_t port, char **known_hosts, sub_err *e);

/* The runtime directory of a VM (caller frees). */
char *sub_vm_run_dir(const char *name);
/* The image cache directory ($SUBSTRATE_VM_CACHE or the default; borrowed). */
const char *sub_vm_cache_dir(void);
