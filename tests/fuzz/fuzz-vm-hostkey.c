/* provision-vm's reader of the guest's SSH host key on the serial console
 * (sub_vm_hostkey_parse, lib/vm/provision.c). The console is written by the
 * guest: whatever it holds, the reader must never pin anything but one
 * well-formed known_hosts line for an ed25519 key on 127.0.0.1 at the given
 * port, must not read past the input, and must agree with itself on every
 * prefix (the console arrives in pieces): a prefix that pins a key pins the
 * same one the whole input does, unless a later line replaced it. */
#include "fuzz.h"
#include "substrate/vm.h"

static void check_line(const char *line) {
    static const char head[] = "[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI";
    FUZZ_ASSERT(strncmp(line, head, sizeof(head) - 1) == 0);
    size_t n = strlen(line);
    FUZZ_ASSERT(n == strlen("[127.0.0.1]:2222 ssh-ed25519 ") + 68 + 1 && line[n - 1] == '\n');
    for (size_t i = strlen("[127.0.0.1]:2222 ssh-ed25519 "); i < n - 1; i++)
        FUZZ_ASSERT((line[i] >= 'A' && line[i] <= 'Z') || (line[i] >= 'a' && line[i] <= 'z') ||
                    (line[i] >= '0' && line[i] <= '9') || line[i] == '+' || line[i] == '/' || line[i] == '=');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* an exact-size copy, so ASan sees any read past the end */
    char *buf = xmalloc(size ? size : 1);
    if (size) memcpy(buf, data, size);
    char *line = NULL;
    sub_err e = {0};
    int r = sub_vm_hostkey_parse(buf, size, 2222, &line, &e);
    FUZZ_ASSERT(r == 1 || r == 0 || r == -EPROTO);
    if (r == 1) check_line(line);
    else FUZZ_ASSERT(line == NULL);
    if (r < 0) FUZZ_ASSERT(e.code == -EPROTO && e.msg[0]);
    if (r == 0) FUZZ_ASSERT(e.code == 0);
    /* the same input, cut where the last newline is: a complete line found
     * in the whole input ends at or before it, so the cut agrees */
    size_t cut = size;
    while (cut && buf[cut - 1] != '\n' && buf[cut - 1] != '\r') cut--;
    if (cut < size) {
        char *l2 = NULL;
        sub_err e2 = {0};
        int r2 = sub_vm_hostkey_parse(buf, cut, 2222, &l2, &e2);
        FUZZ_ASSERT(r2 == r || (r == 0 && r2 != 0)); /* a later partial mark can only hide, never change */
        if (r == 1 && r2 == 1) FUZZ_ASSERT(strcmp(line, l2) == 0);
        free(l2);
    }
    free(line);
    free(buf);
    return 0;
}
