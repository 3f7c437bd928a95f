/* The qemu microvm backend: the VMM's command line for one job.
 *
 * -M microvm with ACPI on (with acpi=off the guest halts and qemu never
 * exits), no default devices, no reboot (a guest panic or power-off ends
 * qemu), no display; the kernel and our initramfs by direct boot; the job's
 * disk read-only on virtio-blk; the serial console and the agent's
 * virtio-serial port on sockets the runner made and handed over as file
 * descriptors (qemu opens no path of its own for them); a NIC only on a tap
 * the runner made; and qemu's seccomp sandbox on with spawning, privilege
 * changes and resource control denied. */
#include "t2-internal.h"
#include "substrate/macro.h"
#include "substrate/proc.h"
#include <errno.h>
#include <unistd.h>

#define QEMU_BIN "/usr/bin/qemu-system-x86_64"
#define QEMU_SANDBOX "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

static int qemu_argv(const t2_backend *b, const t2_vm_config *c, char ***out, sub_err *e) {
    (void)e;
    char **v = NULL;
    const char *fixed[] = {b->binary, "-M", "microvm,acpi=on", "-nodefaults", "-no-reboot", "-display", "none",
                           "-msg", "timestamp=off", "-sandbox", QEMU_SANDBOX};
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++) strv_push(&v, fixed[i]);
    _cleanup_free_ char *mem = xasprintf("%u", c->memory_mb), *smp = xasprintf("%u", c->vcpus),
                        *drive = xasprintf("id=rootfs,file=%s,format=raw,if=none,readonly=on,cache=unsafe",
                                           c->disk),
                        *con = xasprintf("socket,id=con,fd=%d", c->console_fd),
                        *ctl = xasprintf("socket,id=ctl,fd=%d", c->ctl_fd);
    const char *rest[] = {"-accel", c->kvm ? "kvm" : "tcg", "-m", mem, "-smp", smp,
                          "-kernel", c->kernel, "-initrd", c->initramfs, "-append", c->cmdline};
    for (size_t i = 0; i < ARRAY_SIZE(rest); i++) strv_push(&v, rest[i]);
    if (c->disk) { /* none for a boot that only has to reach the agent (nested-smoke) */
        const char *d[] = {"-drive", drive, "-device", "virtio-blk-device,drive=rootfs"};
        for (size_t i = 0; i < ARRAY_SIZE(d); i++) strv_push(&v, d[i]);
    }
    const char *chan[] = {"-chardev", con, "-serial", "chardev:con", "-device", "virtio-serial-device",
                          "-chardev", ctl, "-device", "virtserialport,chardev=ctl,name=substrate.ctl"};
    for (size_t i = 0; i < ARRAY_SIZE(chan); i++) strv_push(&v, chan[i]);
    if (c->tap_fd >= 0) {
        _cleanup_free_ char *nd = xasprintf("tap,id=net0,fd=%d", c->tap_fd),
                            *dev = xasprintf("virtio-net-device,netdev=net0,mac=%s", c->mac);
        const char *n[] = {"-netdev", nd, "-device", dev};
        for (size_t i = 0; i < ARRAY_SIZE(n); i++) strv_push(&v, n[i]);
    } else {
        strv_push(&v, "-nic");
        strv_push(&v, "none");
    }
    *out = v;
    return 0;
}

static const t2_backend qemu = {.name = "qemu-microvm", .binary = QEMU_BIN, .argv = qemu_argv};

int t2_backend_qemu(const t2_backend **out, sub_err *e) {
    if (access(QEMU_BIN, X_OK) < 0)
        return sub_err_setk(e, SUB_KIND_ENV, -ENOENT, "%s is not installed: install qemu-system-x86 "
                            "(scripts/install-deps does)", QEMU_BIN);
    *out = &qemu;
    return 0;
}
