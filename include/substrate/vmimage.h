/* The host-side pieces of a bootable Tier-2 microVM (DESIGN.md, "Tier-2 microVM"):
 *
 *  - the kernel: Debian's vmlinuz (a bzImage) has its compressed payload extracted once to an
 *    uncompressed ELF vmlinux (qemu -M microvm boots that directly, and a TCG guest boots faster
 *    without decompressing itself), cached by the vmlinuz's digest;
 *  - the host TSC rate, measured once and cached, for the guest's tsc_early_khz=;
 *  - the module closure the guest agent must insmod, in load order;
 *  - a deterministic initramfs (cpio "newc", uncompressed) with the agent as /init.
 *
 * Caches live under a caller-given cache_dir and are safe with several runners at once: every
 * file is written to a temp file beside its final name (<name>.tmp-<pid>-XXXXXX, see fs.h and
 * residue.h) and renamed into place, never truncated in place; files are 0644 and directories
 * 0755, because qemu reads them as an unprivileged uid. Leftover temp files of killed runs are
 * swept by the next prepare in the same directory.
 *
 * Errors: negative errno plus sub_err (library code prints nothing). All outputs are owned by
 * the caller, as each prototype says. */
#pragma once
#include "error.h"
#include <stddef.h>

typedef struct sub_vm_kernel {
    char *version;     /* "6.1.0-57-amd64" (owned) */
    char *vmlinuz;     /* the source, e.g. /boot/vmlinuz-6.1.0-57-amd64 (owned) */
    char *vmlinux;     /* cache path of the uncompressed ELF kernel, mode 0644 (owned) */
    char *modules_dir; /* /lib/modules/<version> (owned); it may not exist for a kernel given by
                        * $SUBSTRATE_VM_KERNEL: sub_vm_modules_resolve then says so */
} sub_vm_kernel;

/* Free the members (not k itself) and zero them; NULL and a zeroed struct are fine. */
void sub_vm_kernel_done(sub_vm_kernel *k);

/* Find the kernel: $SUBSTRATE_VM_KERNEL (path of a vmlinuz/bzImage) if set, else the newest
 * /boot/vmlinuz-<ver> (version order, strverscmp, not mtime) whose /lib/modules/<ver>/modules.dep
 * exists. The version of a $SUBSTRATE_VM_KERNEL image is the first word of the bzImage's own
 * version string (setup header kernel_version), else the file name's "vmlinuz-<ver>" suffix;
 * $SUBSTRATE_VM_MODULES, if set, replaces /lib/modules/<ver> as modules_dir.
 * Extract its payload to <cache_dir>/kernel/vmlinux-<ver>-<sha256 of vmlinuz, 12 hex> once
 * (atomic: temp file + rename; reused when present and it starts with \x7fELF).
 * No kernel found: -ENOENT, env class, message says to install linux-image-amd64
 * (scripts/install-deps does). *out is filled only on success (sub_vm_kernel_done it). */
int sub_vm_kernel_prepare(const char *cache_dir, sub_vm_kernel *out, sub_err *e);

/* The uncompressed kernel inside a bzImage held in memory (len bytes): the payload named by the
 * setup header (setup_sects at 0x1f1, "HdrS" at 0x202, payload_offset/payload_length at
 * 0x248/0x24c, relative to the protected-mode code at (setup_sects+1)*512), else the first
 * xz / gzip / zstd / lzma / bzip2 / lz4 magic found by scanning; decompressed with libarchive
 * and checked to be a complete ELF64 file (its section header table inside the output).
 * *out (malloc'd, caller frees) and *out_len on success; -ENOEXEC (input class) when there is
 * no kernel in it. `what` names the image in messages. */
int sub_vm_bzimage_extract(const void *data, size_t len, const char *what, char **out,
                           size_t *out_len, sub_err *e);

/* The host's TSC rate in kHz, for the guest's tsc_early_khz= (DESIGN.md says why): measured once
 * (rdtsc against CLOCK_MONOTONIC_RAW over ~100-200 ms, taking the median of a few short windows)
 * and cached in <cache_dir>/tsc_khz; $SUBSTRATE_TSC_KHZ overrides (a value outside the range is
 * refused: -EINVAL, input class). Sanity range 100000..10000000 (SUB_TSC_KHZ_MIN/MAX); a cached
 * value outside it is measured again. Not x86: -EOPNOTSUPP unless $SUBSTRATE_TSC_KHZ is set. */
#define SUB_TSC_KHZ_MIN 100000UL
#define SUB_TSC_KHZ_MAX 10000000UL
int sub_vm_tsc_khz(const char *cache_dir, unsigned long *khz, sub_err *e);

/* Module closure in load order for the given names (e.g. {"virtio_mmio","virtio_console",
 * "virtio_blk","erofs","overlay",NULL}): read <modules_dir>/modules.dep (hard deps; file paths
 * relative to modules_dir; names match with '-' and '_' equivalent), put every dependency before
 * its user, and honour softdep "pre:" ordering that modules.dep lacks: read
 * <modules_dir>/modules.softdep if present and otherwise the .modinfo of the .ko
 * ("softdep=pre: crc32c"). A softdep name that is not a module is an alias: it resolves to
 * "<alias>_generic" when that module exists (the generic implementation: "crc32c" ->
 * crc32c_generic.ko), else to the modules.alias entries for it (a *_generic one first); a softdep
 * that resolves to nothing, or to a built-in, is dropped (softdeps are optional).
 * Each module's pre-softdeps (with their own closures) come first, then its hard deps (the last
 * listed in modules.dep first, as modprobe does), then the module; each module appears once.
 * Measured here: erofs gives crc32c_generic, libcrc32c, erofs; virtio_console gives
 * virtio_ring, virtio, virtio_console.
 * A module built into the kernel (listed in modules.builtin) is skipped silently. An unknown
 * module name: -ENOENT, input class, naming it (and a close name, if any). No modules.dep:
 * -ENOENT, env class.
 * Supports .ko, .ko.xz, .ko.zst and .ko.gz (read through libarchive's raw format).
 * out: NULL-terminated array of absolute paths (owned, free with strv_free from macro.h). */
int sub_vm_modules_resolve(const char *modules_dir, const char *const *names, char ***out,
                           sub_err *e);

/* The contents of a module file, decompressed when its name ends in .xz / .zst / .gz (any
 * format libarchive's filters know, in fact). *out (caller frees), *out_len. */
int sub_vm_module_read(const char *path, char **out, size_t *out_len, sub_err *e);

/* The initramfs: a cpio newc archive, uncompressed (a TCG guest boots faster without
 * decompression), deterministic (sorted, mtime 0, uid/gid 0, inode numbers assigned in order,
 * TRAILER!!!), containing: directories /dev /proc /sys /tmp /run /mnt /newroot /lib /lib/modules
 * (0755; /tmp 01777); /dev/console (char 5:1, 0600) and /dev/null (char 1:3, 0666); /init = the
 * agent binary (0755); /lib/modules/<file>.ko for every module of the closure (decompressed,
 * 0644; <file> is the module's file name without .ko and any compression suffix, e.g.
 * virtio_ring.ko); /modules.order = those file names ("virtio_ring.ko") one per line in load
 * order. Written to <cache_dir>/initramfs/initramfs-<sha256 of the archive bytes, 16 hex>.cpio
 * atomically (mode 0644), reused when the same content already exists. *out_path owned.
 * modules: either module names (NULL-terminated), whose closure is resolved against
 * k->modules_dir with sub_vm_modules_resolve, or, when every entry is an absolute path, module
 * files already in load order (sub_vm_modules_resolve's output; k may then be NULL). NULL or
 * empty: no modules. Two module files with one name: -EINVAL. */
int sub_vm_initramfs_prepare(const char *cache_dir, const sub_vm_kernel *k, const char *agent_path,
                             const char *const *modules, char **out_path, sub_err *e);

/* The archive itself, in memory (what sub_vm_initramfs_prepare writes): *out (caller frees),
 * *out_len. Same modules rule. */
int sub_vm_initramfs_build(const sub_vm_kernel *k, const char *agent_path,
                           const char *const *modules, char **out, size_t *out_len, sub_err *e);
