/* The golden VM spec (lib/vm/spec.c): parsing with line:col refusals, the
 * canonical JSON, the two cache keys and the rebuild/restart decision. */
#include "substrate/vm.h"
#include "substrate/vmspec.h"
#include "unit.h"
#include <stdio.h>

#define SPATH "/srv/vm/golden.yaml"
#define ED25519 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"
#define RSA "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAACQAAAAAAAAAAAA=="
#define RELEASE "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define RELEASE2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define COMMIT "7e1aa97c0ffee"

/* repo: NULL, or the source tree (services checked, base packages read) */
static int parse_in(const char *yaml, const char *repo, sub_vm_spec *s, sub_err *e) {
    sub_err_clear(e);
    return sub_vm_spec_parse(yaml, strlen(yaml), SPATH, repo, s, e);
}

static void refused(const char *file, int ln, const char *yaml, const char *repo, const char *want,
                    int line, int col) {
    sub_vm_spec s;
    sub_err e = {0};
    int r = sub_vm_spec_parse(yaml, strlen(yaml), SPATH, repo, &s, &e);
    if (r != -EINVAL || e.kind != SUB_KIND_INPUT || e.reason != SUB_R_BAD_VM_SPEC)
        unit_fail(file, ln, "expected a bad_vm_spec refusal (%s), got %d kind %d reason %s: %s",
                  want, r, e.kind, sub_reason_to_string(e.reason), e.msg);
    if (!strstr(e.msg, want)) unit_fail(file, ln, "message lacks \"%s\": %s", want, e.msg);
    char pre[64];
    snprintf(pre, sizeof pre, SPATH ":%d:%d: ", line, col);
    if (!str_has_prefix(e.msg, pre)) unit_fail(file, ln, "message does not start \"%s\": %s", pre, e.msg);
    CHECK(s.name == NULL && s.suite == NULL && s.users == NULL && s.packages == NULL);
    sub_vm_spec_done(&s);
}
#define REFUSED(yaml, want, line, col) refused(__FILE__, __LINE__, yaml, NULL, want, line, col)

TEST(vmspec_reference_parses) {
    _cleanup_free_ char *p = unit_src("platform/vm/golden.yaml");
    _cleanup_free_ char *repo = unit_src(".");
    _cleanup_vm_spec_ sub_vm_spec s = {0};
    sub_err e = {0};
    CHECK_OK(sub_vm_spec_load(p, repo, &s, &e), &e);
    if (e.code) return;
    CHECK_STREQ(s.path, p);
    CHECK_STREQ(s.name, "golden");
    CHECK_STREQ(s.suite, "bookworm");
    CHECK_INT(s.cpus, 2);
    CHECK_INT(s.memory_bytes, 4ull << 30);
    CHECK_INT(s.disk_bytes, 16ull << 30);
    CHECK(s.packages && s.packages[0] == NULL);
    CHECK_INT(s.nusers, 1);
    if (s.nusers == 1) {
        CHECK_STREQ(s.users[0].name, "substrate");
        CHECK(s.users[0].sudo);
        CHECK(s.users[0].ssh_keys && s.users[0].ssh_keys[0] == NULL);
    }
    CHECK(s.services && streq(s.services[0], "hello") && !s.services[1]);
    CHECK_INT(s.ssh_port, 2222);
    /* the base set is scripts/debian-packages: what install-deps installs, toolchain included */
    size_t n = strv_len(s.base_packages);
    CHECK(n > 20);
    const char *must[] = {"build-essential", "libyaml-dev", "qemu-system-x86", "linux-image-amd64",
                          "runc", "clang-14", "systemd"};
    for (size_t i = 0; i < ARRAY_SIZE(must); i++) {
        bool found = false;
        for (size_t j = 0; j < n; j++) found |= streq(s.base_packages[j], must[i]);
        if (!found) unit_fail(__FILE__, __LINE__, "base packages lack %s", must[i]);
    }
    for (size_t j = 1; j < n; j++) CHECK(strcmp(s.base_packages[j - 1], s.base_packages[j]) < 0);
}

TEST(vmspec_defaults) {
    _cleanup_vm_spec_ sub_vm_spec s = {0};
    sub_err e = {0};
    CHECK_OK(parse_in("", NULL, &s, &e), &e);
    if (e.code) return;
    CHECK(s.path && streq(s.path, SPATH));
    CHECK_STREQ(s.name, "golden");
    CHECK_STREQ(s.suite, "bookworm");
    CHECK_INT(s.cpus, 2);
    CHECK_INT(s.memory_bytes, 4ull << 30);
    CHECK_INT(s.disk_bytes, 16ull << 30);
    CHECK_INT(s.ssh_port, 2222);
    CHECK_INT(s.nusers, 0);
    CHECK(s.packages && !s.packages[0] && s.services && !s.services[0]);
    CHECK(s.base_packages && !s.base_packages[0]); /* no repo: no base list */
    _cleanup_free_ char *j = sub_vm_spec_to_json(&s);
    CHECK_STREQ(j, "{\"base_packages\":[],\"cpus\":2,\"disk_bytes\":17179869184,"
                   "\"memory_bytes\":4294967296,\"name\":\"golden\",\"packages\":[],"
                   "\"services\":[],\"ssh_port\":2222,\"suite\":\"bookworm\",\"users\":[]}");
    sub_vm_spec_done(&s);
    CHECK_OK(parse_in("# only a comment\n", NULL, &s, &e), &e);
    CHECK_INT(s.cpus, 2);
}

TEST(vmspec_every_field) {
    _cleanup_free_ char *repo = unit_src(".");
    const char *y = "name: dev-1\nsuite: trixie\ncpus: 64\nmemory: 1536Mi\ndisk: 2Ti\n"
                    "packages: [vim, htop, g++, libc6.1-dev, htop]\n"
                    "users:\n"
                    "  - name: alice\n    sudo: false\n"
                    "    ssh_keys: [\"" ED25519 " alice@laptop\", \"" RSA "\"]\n"
                    "  - {name: _bob-2}\n"
                    "services: [hello, agent]\nssh_port: 65535\n";
    _cleanup_vm_spec_ sub_vm_spec s = {0};
    sub_err e = {0};
    CHECK_OK(parse_in(y, repo, &s, &e), &e);
    if (e.code) return;
    CHECK_STREQ(s.name, "dev-1");
    CHECK_STREQ(s.suite, "trixie");
    CHECK_INT(s.cpus, 64);
    CHECK_INT(s.memory_bytes, 1536ull << 20);
    CHECK_INT(s.disk_bytes, 2ull << 40);
    /* sorted, the repeat dropped */
    CHECK_INT(strv_len(s.packages), 4);
    CHECK_STREQ(s.packages[0], "g++");
    CHECK_STREQ(s.packages[1], "htop");
    CHECK_STREQ(s.packages[2], "libc6.1-dev");
    CHECK_STREQ(s.packages[3], "vim");
    CHECK_INT(s.nusers, 2);
    if (s.nusers == 2) {
        CHECK_STREQ(s.users[0].name, "alice");
        CHECK(!s.users[0].sudo);
        CHECK_STREQ(s.users[0].ssh_keys[0], ED25519 " alice@laptop");
        CHECK_STREQ(s.users[0].ssh_keys[1], RSA);
        CHECK(s.users[0].ssh_keys[2] == NULL);
        CHECK_STREQ(s.users[1].name, "_bob-2");
        CHECK(!s.users[1].sudo && s.users[1].ssh_keys && !s.users[1].ssh_keys[0]);
    }
    CHECK(streq(s.services[0], "agent") && streq(s.services[1], "hello") && !s.services[2]);
    CHECK_INT(s.ssh_port, 65535);
    _cleanup_strv_ char **all = sub_vm_spec_all_packages(&s);
    CHECK_INT(strv_len(all), strv_len(s.base_packages) + 4);
    /* sizes at the bounds */
    sub_vm_spec_done(&s);
    CHECK_OK(parse_in("memory: 512Mi\ndisk: 4Gi\ncpus: 1\nssh_port: 1024\n", NULL, &s, &e), &e);
    CHECK_INT(s.memory_bytes, 512ull << 20);
    CHECK_INT(s.disk_bytes, 4ull << 30);
    sub_vm_spec_done(&s);
    CHECK_OK(parse_in("memory: 256Gi\ndisk: 2048Gi\ncpus: 64\nssh_port: 65535\n", NULL, &s, &e), &e);
    CHECK_INT(s.memory_bytes, 256ull << 30);
    CHECK_INT(s.disk_bytes, 2ull << 40);
}

TEST(vmspec_refusals_with_position) {
    REFUSED("cpus: 2\nmemroy: 4Gi\n", "memroy: unknown key; did you mean memory?", 2, 1);
    REFUSED("cpus: 2\nflavour: big\n", "flavour: unknown key (known keys: name, suite, cpus", 2, 1);
    REFUSED("users:\n  - name: a\n    shell: /bin/zsh\n", "users[0].shell: unknown key (known here: "
            "name, ssh_keys, sudo)", 3, 5);
    REFUSED("users:\n  - name: a\n    sudo: yes\n", "users[0].sudo: \"yes\" is not a boolean", 3, 11);
    REFUSED("cpus: [2]\n", "cpus: expected a string, found a list", 1, 7);
    REFUSED("packages: vim\n", "packages: expected a list, found a string", 1, 11);
    REFUSED("users: {name: a}\n", "users: expected a list, found a mapping", 1, 8);
    REFUSED("suite: buster\n", "suite: \"buster\" is not one of bookworm, trixie", 1, 8);
    REFUSED("cpus: 0\n", "cpus: \"0\" is too small (expected a whole number from 1 to 64)", 1, 7);
    REFUSED("cpus: 65\n", "cpus: \"65\" is too large", 1, 7);
    REFUSED("memory: 256Mi\n", "memory: \"256Mi\" is too small (expected a size from 512Mi to 256Gi", 1, 9);
    REFUSED("memory: 4 GB\n", "memory: \"4 GB\" is not a size", 1, 9);
    REFUSED("disk: 3Ti\n", "disk: \"3Ti\" is too large (expected a size from 4Gi to 2Ti", 1, 7);
    REFUSED("packages: [vim, Htop]\n", "packages[1]: \"Htop\" is not a Debian package name", 1, 17);
    REFUSED("packages: [vim, \"a;rm\"]\n", "packages[1]: \"a;rm\" is not a Debian package name", 1, 17);
    REFUSED("packages: [x]\n", "packages[0]: \"x\" is not a Debian package name (at least two", 1, 12);
    REFUSED("users:\n  - name: a\n    ssh_keys: [\"ssh-dss AAAAB3 me\"]\n",
            "users[0].ssh_keys[0]: \"ssh-dss AAAAB3 me\" is not an SSH public key", 3, 16);
    REFUSED("users:\n  - name: a\n    ssh_keys: [\"ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAACQAAAAAAAAAAAA== x\"]\n",
            "is not an SSH public key: its key data is not a key of the type it names", 3, 16);
    REFUSED("users:\n  - name: a\n    ssh_keys: [\"" ED25519 " a\\nssh-rsa AAAA b\"]\n",
            "spans more than one line", 3, 16);
    REFUSED("users:\n  - name: a\n    ssh_keys: [\"ssh-ed25519 AAAA!!!!\"]\n",
            "its key data is not valid base64", 3, 16);
    REFUSED("users:\n  - sudo: true\n", "users[0].name: missing", 2, 5);
    REFUSED("users:\n  - name: root\n", "users[0].name: \"root\" is root", 2, 11);
    REFUSED("users:\n  - name: Alice\n", "users[0].name: \"Alice\" is not a user name", 2, 11);
    REFUSED("users:\n  - name: a\n  - name: a\n", "users[1]: user \"a\" is listed twice", 3, 5);
    REFUSED("ssh_port: 22\n", "ssh_port: \"22\" is too small (expected a whole number from 1024 to 65535)", 1, 11);
    REFUSED("ssh_port: 70000\n", "ssh_port: \"70000\" is too large", 1, 11);
    REFUSED("name: Golden\n", "name: \"Golden\" is not a name", 1, 7);
    REFUSED("cpus: 2\ncpus: 4\n", "cpus: given twice (first at line 1)", 2, 1);
    REFUSED("users:\n  - name: a\n    sudo: true\n    sudo: false\n",
            "users[0].sudo: given twice (first at line 3)", 4, 5);
    REFUSED("services: [hello, hello]\n", "services[1]: \"hello\" is listed twice", 1, 19);
    REFUSED("- cpus\n", "a VM spec is a mapping of fields", 1, 1);
    REFUSED("cpus: &a 2\n", "YAML anchors (&a) are not allowed", 1, 7);
    REFUSED("cpus: 2\n---\ncpus: 3\n", "a second YAML document: a VM spec is one document", 2, 1);
    REFUSED("cpus: [2\n", "YAML syntax error", 2, 1);
}

TEST(vmspec_services_checked_in_the_repo) {
    _cleanup_free_ char *repo = unit_src(".");
    refused(__FILE__, __LINE__, "services: [hello, nginx]\n", repo,
            "services[1]: no service \"nginx\": there is no platform/manifests/nginx.service.yaml "
            "(available: agent, hello)",
            1, 19);
    /* without a repo only the form is checked */
    _cleanup_vm_spec_ sub_vm_spec s = {0};
    sub_err e = {0};
    CHECK_OK(parse_in("services: [nginx]\n", NULL, &s, &e), &e);
    /* a repo without the package list is an environment error, not the spec's */
    sub_vm_spec_done(&s);
    int r = parse_in("cpus: 2\n", unit_tmpdir(), &s, &e);
    CHECK_INT(r, -ENOENT);
    CHECK(e.kind != SUB_KIND_INPUT && strstr(e.msg, "base package list"));
    CHECK(s.name == NULL);
}

static void parse_ok(const char *y, sub_vm_spec *s) {
    sub_err e = {0};
    CHECK_OK(parse_in(y, NULL, s, &e), &e);
}

TEST(vmspec_canonical_json_stable) {
    _cleanup_vm_spec_ sub_vm_spec a = {0}, b = {0};
    parse_ok("packages: [vim, htop]\ncpus: 4\nusers: [{name: u, sudo: true}]\n", &a);
    parse_ok("users:\n  - sudo: true\n    name: u\ncpus: \"4\"\npackages:\n  - htop\n  - vim\n  - vim\n", &b);
    _cleanup_free_ char *ja = sub_vm_spec_to_json(&a), *jb = sub_vm_spec_to_json(&b);
    CHECK_STREQ(ja, jb);
    CHECK(strstr(ja, "\"packages\":[\"htop\",\"vim\"]"));
    CHECK(strstr(ja, "\"users\":[{\"name\":\"u\",\"ssh_keys\":[],\"sudo\":true}]"));
}

typedef struct keys {
    char image[SUB_DIGEST_MAX], boot[SUB_DIGEST_MAX];
} keys;

static keys keys_of(const sub_vm_spec *s, const char *release, const char *commit) {
    keys k = {{0}, {0}};
    sub_err e = {0};
    CHECK_OK(sub_vm_spec_image_key(s, release, commit, k.image, &e), &e);
    sub_vm_spec_boot_key(s, k.boot);
    CHECK(str_has_prefix(k.image, "sha256:") && strlen(k.image) == 71);
    CHECK(str_has_prefix(k.boot, "sha256:") && strlen(k.boot) == 71);
    return k;
}

#define BASE "packages: [vim, htop]\nusers: [{name: u, sudo: true, ssh_keys: [\"" ED25519 "\"]}]\n" \
             "services: [hello]\n"

/* old -> new: the decision, the sentence, and which keys moved */
static void expect_change(const char *file, int ln, const char *old_y, const char *new_y,
                          sub_vm_change want, const char *want_why) {
    _cleanup_vm_spec_ sub_vm_spec a = {0}, b = {0};
    parse_ok(old_y, &a);
    parse_ok(new_y, &b);
    if (!a.name || !b.name) return;
    keys ka = keys_of(&a, RELEASE, COMMIT), kb = keys_of(&b, RELEASE, COMMIT);
    _cleanup_free_ char *why = NULL;
    sub_vm_change c = sub_vm_spec_diff(&a, NULL, &b, NULL, &why);
    if (c != want)
        unit_fail(file, ln, "diff says %s, expected %s: %s", sub_vm_change_str(c),
                  sub_vm_change_str(want), why);
    if (!why || !streq(why, want_why)) unit_fail(file, ln, "why: \"%s\" != \"%s\"", why, want_why);
    bool image_moved = !streq(ka.image, kb.image), boot_moved = !streq(ka.boot, kb.boot);
    if (image_moved != (want == SUB_VM_REBUILD))
        unit_fail(file, ln, "image key %s", image_moved ? "changed" : "did not change");
    if (want == SUB_VM_RESTART && !boot_moved) unit_fail(file, ln, "boot key did not change");
    if (want == SUB_VM_SAME && boot_moved) unit_fail(file, ln, "boot key changed");
}
#define CHANGE(a, b, want, why) expect_change(__FILE__, __LINE__, a, b, want, why)

TEST(vmspec_boot_fields_restart) {
    CHANGE(BASE, BASE "cpus: 4\n", SUB_VM_RESTART, "cpus 2 -> 4: restart without rebuild");
    CHANGE(BASE, BASE "memory: 8Gi\n", SUB_VM_RESTART, "memory 4Gi -> 8Gi: restart without rebuild");
    CHANGE(BASE, BASE "ssh_port: 2223\n", SUB_VM_RESTART,
           "ssh_port 2222 -> 2223: restart without rebuild");
    CHANGE(BASE, BASE "cpus: 3\nmemory: 1536Mi\n", SUB_VM_RESTART,
           "cpus 2 -> 3, memory 4Gi -> 1536Mi: restart without rebuild");
}

TEST(vmspec_image_fields_rebuild) {
    CHANGE(BASE, BASE "suite: trixie\n", SUB_VM_REBUILD, "suite bookworm -> trixie: rebuild");
    CHANGE(BASE, BASE "disk: 32Gi\n", SUB_VM_REBUILD, "disk 16Gi -> 32Gi: rebuild");
    CHANGE("packages: [vim, htop]\n", "packages: [htop, jq, git]\n", SUB_VM_REBUILD,
           "packages changed (added git jq; removed vim): rebuild");
    CHANGE("packages: [vim, htop]\n", "packages: [vim]\n", SUB_VM_REBUILD,
           "packages changed (removed htop): rebuild");
    CHANGE(BASE, "packages: [vim, htop]\nusers: [{name: u, sudo: false, ssh_keys: [\"" ED25519
                 "\"]}]\nservices: [hello]\n",
           SUB_VM_REBUILD, "users changed: rebuild");
    CHANGE(BASE, "packages: [vim, htop]\nusers: [{name: u, sudo: true, ssh_keys: [\"" ED25519
                 " new-comment\"]}]\nservices: [hello]\n",
           SUB_VM_REBUILD, "users changed: rebuild");
    CHANGE("services: [hello]\n", "services: [hello, agent]\n", SUB_VM_REBUILD,
           "services changed (added agent): rebuild");
    /* an image field and a boot field: a rebuild, both named */
    CHANGE("cpus: 2\n", "cpus: 8\nsuite: trixie\n", SUB_VM_REBUILD,
           "suite bookworm -> trixie, cpus 2 -> 8: rebuild");
}

TEST(vmspec_same_and_reordering) {
    CHANGE(BASE, BASE, SUB_VM_SAME, "no change");
    CHANGE(BASE, "services: [hello]\npackages: [htop, vim, htop]\nusers: [{ssh_keys: [\"" ED25519
                 "\"], name: u, sudo: true}]\n",
           SUB_VM_SAME, "no change");
    CHANGE("services: [agent, hello]\n", "services: [hello, agent]\n", SUB_VM_SAME, "no change");
    /* the name names the runtime files, not the contents */
    CHANGE(BASE, BASE "name: other\n", SUB_VM_SAME, "no change");
    /* a package in both the base set and packages counts once: the image is the same */
    _cleanup_vm_spec_ sub_vm_spec a = {0}, b = {0};
    parse_ok("packages: [htop]\n", &a);
    parse_ok("packages: [htop, vim]\n", &b);
    if (!a.name || !b.name) return;
    strv_push(&a.base_packages, "vim");
    _cleanup_free_ char *why = NULL;
    CHECK_INT(sub_vm_spec_diff(&a, NULL, &b, NULL, &why), SUB_VM_SAME);
    CHECK_STREQ(keys_of(&a, RELEASE, COMMIT).image, keys_of(&b, RELEASE, COMMIT).image);
}

TEST(vmspec_commit_and_release_rebuild) {
    _cleanup_vm_spec_ sub_vm_spec s = {0};
    parse_ok(BASE, &s);
    if (!s.name) return;
    keys k0 = keys_of(&s, RELEASE, COMMIT), k1 = keys_of(&s, RELEASE, "8951ba9"),
         k2 = keys_of(&s, RELEASE2, COMMIT), k3 = keys_of(&s, RELEASE, COMMIT);
    CHECK_STREQ(k0.image, k3.image); /* deterministic */
    CHECK(!streq(k0.image, k1.image));
    CHECK(!streq(k0.image, k2.image));
    CHECK(!streq(k1.image, k2.image));
    CHECK_STREQ(k0.boot, k1.boot);
    CHECK(!streq(k0.image, k0.boot));
    sub_vm_inputs a = {RELEASE, COMMIT}, b = {RELEASE, "8951ba9"}, c = {RELEASE2, COMMIT};
    _cleanup_free_ char *w1 = NULL, *w2 = NULL, *w3 = NULL;
    CHECK_INT(sub_vm_spec_diff(&s, &a, &s, &b, &w1), SUB_VM_REBUILD);
    CHECK_STREQ(w1, "commit " COMMIT " -> 8951ba9: rebuild");
    CHECK_INT(sub_vm_spec_diff(&s, &a, &s, &c, &w2), SUB_VM_REBUILD);
    CHECK_STREQ(w2, "the mirror's Release file changed: rebuild");
    CHECK_INT(sub_vm_spec_diff(&s, &a, &s, &a, &w3), SUB_VM_SAME);
    /* the key refuses to be made without its inputs */
    char out[SUB_DIGEST_MAX];
    sub_err e = {0};
    CHECK_INT(sub_vm_spec_image_key(&s, NULL, COMMIT, out, &e), -EINVAL);
    CHECK(strstr(e.msg, "Release file"));
    CHECK_INT(sub_vm_spec_image_key(&s, "sha256:abc", COMMIT, out, &e), -EINVAL);
    CHECK_INT(sub_vm_spec_image_key(&s, RELEASE, "", out, &e), -EINVAL);
    CHECK(strstr(e.msg, "commit"));
    CHECK_INT(sub_vm_spec_image_key(&s, RELEASE, "HEAD", out, &e), -EINVAL);
}

/* provision-vm's reader of the guest's host key on the serial console
 * (sub_vm_hostkey_parse, lib/vm/provision.c): what gets pinned. */
static int hk(const char *buf, size_t len, char **line, sub_err *e) {
    sub_err_clear(e);
    *line = NULL;
    return sub_vm_hostkey_parse(buf, len, 2222, line, e);
}
#define HK_LINE "[127.0.0.1]:2222 " ED25519 "\n"
TEST(vm_hostkey_from_serial) {
    sub_err e = {0};
    char *line = NULL;
    const char *boot = "[    1.2] systemd[1]: Started ssh.\r\nsubstrate-vm hostkey " ED25519 "\r\nlogin: ";
    CHECK_INT(hk(boot, strlen(boot), &line, &e), 1);
    CHECK_STREQ(line, HK_LINE);
    free(line);
    /* not yet there, or the line not finished: keep reading, nothing pinned */
    CHECK_INT(hk("", 0, &line, &e), 0);
    CHECK(line == NULL);
    const char *half = "boot\nsubstrate-vm hostkey " ED25519;
    CHECK_INT(hk(half, strlen(half), &line, &e), 0);
    CHECK(line == NULL);
    /* a NUL earlier on the console does not hide the key (strstr would stop there) */
    char nul[256];
    int n = snprintf(nul, sizeof nul, "x%cy\nsubstrate-vm hostkey %s comment\n", '\0', ED25519);
    CHECK_INT(hk(nul, (size_t)n, &line, &e), 1);
    CHECK_STREQ(line, HK_LINE);
    free(line);
    /* the last complete line counts (a reboot prints it again) */
    const char *two = "substrate-vm hostkey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP////////////////////////////////////////8\n"
                      "substrate-vm hostkey " ED25519 "\n";
    CHECK_INT(hk(two, strlen(two), &line, &e), 1);
    CHECK_STREQ(line, HK_LINE);
    free(line);
}

TEST(vm_hostkey_refusals) {
    sub_err e = {0};
    char *line = NULL;
    const char *bad[] = {
        "substrate-vm hostkey " RSA "\n",                                             /* another type */
        "substrate-vm hostkey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgME\n",        /* short */
        "substrate-vm hostkey ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAACQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", /* rsa blob */
        "substrate-vm hostkey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4*\n",
        "substrate-vm hostkey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f\x1b[0m\n",
        "substrate-vm hostkey \n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        CHECK_INT(hk(bad[i], strlen(bad[i]), &line, &e), -EPROTO);
        CHECK(line == NULL);
        CHECK(e.kind == SUB_KIND_ENV && strstr(e.msg, "host key"));
    }
}
