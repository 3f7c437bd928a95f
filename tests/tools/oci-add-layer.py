#!/usr/bin/python3
"""Add one layer, written exactly as described (hostile entries included), on
top of an image in an OCI layout, for tests. stdlib only.

   oci-add-layer.py LAYOUT FROM_NAME TO_NAME ENTRY...

Each ENTRY is TYPE:NAME[:ARG]:
   file:NAME[:CONTENT]     regular file (mode 0644)
   suid:NAME               regular file, mode 04755
   dir:NAME                directory
   symlink:NAME:TARGET     symbolic link
   hardlink:NAME:TARGET    hard link
   chardev:NAME            character device 1,3
   blockdev:NAME           block device 7,0
   fifo:NAME
NAME is written into the tar header as given: "../x" and "/etc/x" stay so.
The new manifest (with the layer's diff_id in its config) is stored and
named TO_NAME in index.json; FROM_NAME is left as it was."""
import gzip, hashlib, io, json, os, sys, tarfile

layout, src, dst = sys.argv[1:4]
entries = sys.argv[4:]


def blob_path(d):
    return os.path.join(layout, "blobs", "sha256", d.split(":", 1)[1])


def put(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(blob_path(d), "wb") as f:
        f.write(data)
    return d, len(data)


buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
    for e in entries:
        parts = e.split(":", 2)
        kind, name = parts[0], parts[1]
        arg = parts[2] if len(parts) > 2 else ""
        ti = tarfile.TarInfo(name)
        ti.mtime = 1700000000
        data = None
        if kind in ("file", "suid"):
            data = (arg or "x\n").encode()
            ti.size = len(data)
            ti.mode = 0o4755 if kind == "suid" else 0o644
        elif kind == "dir":
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        elif kind == "symlink":
            ti.type, ti.linkname = tarfile.SYMTYPE, arg
        elif kind == "hardlink":
            ti.type, ti.linkname = tarfile.LNKTYPE, arg
        elif kind == "chardev":
            ti.type, ti.devmajor, ti.devminor, ti.mode = tarfile.CHRTYPE, 1, 3, 0o666
        elif kind == "blockdev":
            ti.type, ti.devmajor, ti.devminor, ti.mode = tarfile.BLKTYPE, 7, 0, 0o660
        elif kind == "fifo":
            ti.type, ti.mode = tarfile.FIFOTYPE, 0o644
        else:
            sys.exit("oci-add-layer: unknown entry type " + kind)
        t.addfile(ti, io.BytesIO(data) if data is not None else None)
raw = buf.getvalue()
diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
gz = gzip.compress(raw, mtime=0)
ld, ls = put(gz)

index = json.load(open(os.path.join(layout, "index.json")))
desc = next(m for m in index["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == src)
man = json.load(open(blob_path(desc["digest"])))
cfg = json.load(open(blob_path(man["config"]["digest"])))
cfg["rootfs"]["diff_ids"].append(diff_id)
cd, cs = put(json.dumps(cfg).encode())
man["config"] = dict(man["config"], digest=cd, size=cs)
man["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls})
md, ms = put(json.dumps(man).encode())
index["manifests"] = [m for m in index["manifests"]
                      if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != dst]
index["manifests"].append({"mediaType": man.get("mediaType", "application/vnd.oci.image.manifest.v1+json"),
                           "digest": md, "size": ms,
                           "annotations": {"org.opencontainers.image.ref.name": dst}})
with open(os.path.join(layout, "index.json"), "w") as f:
    json.dump(index, f)
print(md)
