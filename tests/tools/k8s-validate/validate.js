// Strict, offline validation of Kubernetes objects for the test suite.
// Run through ./validate (the sh wrapper); see ./README.md.
//
//   node validate.js FILE...     (FILE "-" reads stdin)
//
// Each FILE holds one object or a v1 List of objects. Every object is checked
// against the schema of the Kubernetes version pinned in package.json (the npm
// package kubernetes-models, its per-kind class's validate()), or, for custom
// resources, against the openAPIV3Schema of a CRD in tests/fixtures/k8s/crd/.
// The schemas allow fields they do not define; like `kubeconform -strict`, this
// tool also walks each object beside its schema and refuses every field name the
// schema does not define, at any depth. Maps (additionalProperties) take any key.
//
// Exit 0: every object valid; 1: some object invalid; 2: usage; 3: not installed.
"use strict";

const fs = require("fs");
const path = require("path");

const HERE = __dirname;
const MODULES = process.env.K8S_VALIDATE_MODULES || path.join(HERE, "node_modules");
const CRD_DIR = process.env.K8S_VALIDATE_CRDS || path.join(HERE, "..", "..", "fixtures", "k8s", "crd");
const INSTALL = "scripts/install-test-tools";

function die(code, msg) {
    process.stderr.write("k8s-validate: " + msg + "\n");
    process.exit(code);
}

// ---- the installed packages, checked against the pins in package.json ----
const pins = JSON.parse(fs.readFileSync(path.join(HERE, "package.json"), "utf8")).dependencies;
for (const name of Object.keys(pins)) {
    let got;
    try {
        got = JSON.parse(fs.readFileSync(path.join(MODULES, name, "package.json"), "utf8")).version;
    } catch (e) {
        die(3, `${name} is not installed in ${MODULES}: run ${INSTALL} (npm ci in tests/tools/k8s-validate)`);
    }
    if (got !== pins[name]) {
        die(3, `${name} ${got} is installed but package.json pins ${pins[name]}: run ${INSTALL}`);
    }
}
const K8S_MODELS_VERSION = pins["kubernetes-models"];

// The raw JSON schemas: kubernetes-models registers each schema (and, through
// its addSchema chain, every schema it refers to) with the shared validator of
// @kubernetes-models/validate by calling that module's exported register(). We
// keep a copy of each as it goes by, to walk objects beside their schemas.
const kmValidate = require(path.join(MODULES, "@kubernetes-models", "validate"));
const schemas = new Map();
{
    const register = kmValidate.register;
    if (typeof register !== "function") die(3, `@kubernetes-models/validate has no register(): run ${INSTALL}`);
    kmValidate.register = function (id, schema) {
        schemas.set(id, schema);
        return register.apply(this, arguments);
    };
}
const Ajv = require(path.join(MODULES, "ajv"));
const OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

// ---- schemas: built-in kinds ----
const API_VERSION_RE = /^(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?$/;
const KIND_RE = /^[A-Z][A-Za-z0-9]*$/;

// The class of apiVersion/kind in kubernetes-models, or null.
function builtinClass(apiVersion, kind) {
    if (!API_VERSION_RE.test(apiVersion) || !KIND_RE.test(kind)) return null;
    const file = path.join(MODULES, "kubernetes-models", ...apiVersion.split("/"), kind + ".js");
    if (!fs.existsSync(file)) return null;
    const cls = require(file)[kind];
    // v1/Container.js exists too, but is no API object: only classes with
    // their own apiVersion and kind are top-level kinds
    if (typeof cls !== "function" || cls.apiVersion !== apiVersion || cls.kind !== kind) return null;
    return cls;
}

// ---- schemas: custom resources, from the CRDs (JSON, converted from YAML) ----
const crds = new Map(); // "group/version Kind" -> {schema, validate, file}
let crdAjv = null;
function loadCrds() {
    let files = [];
    try {
        files = fs.readdirSync(CRD_DIR).filter((f) => f.endsWith(".json")).sort();
    } catch (e) {
        die(3, `cannot read the CRD directory ${CRD_DIR}: ${e.message}`);
    }
    crdAjv = new Ajv({ allErrors: true, strict: false, logger: false, validateFormats: true });
    const isInt = (lo, hi) => (n) => Number.isInteger(n) && n >= lo && n <= hi;
    crdAjv.addFormat("int32", { type: "number", validate: isInt(-2147483648, 2147483647) });
    crdAjv.addFormat("int64", { type: "number", validate: isInt(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER) });
    for (const f of files) {
        const file = path.join(CRD_DIR, f);
        let crd;
        try {
            crd = JSON.parse(fs.readFileSync(file, "utf8"));
        } catch (e) {
            die(3, `cannot read CRD ${file}: ${e.message}`);
        }
        if (crd.kind !== "CustomResourceDefinition" || !crd.spec || !crd.spec.names || !Array.isArray(crd.spec.versions)) {
            die(3, `${file} is not a CustomResourceDefinition`);
        }
        for (const v of crd.spec.versions) {
            if (!v.served) continue;
            const schema = v.schema && v.schema.openAPIV3Schema;
            if (!schema) die(3, `${file}: version ${v.name} has no openAPIV3Schema`);
            let validate;
            try {
                validate = crdAjv.compile(schema);
            } catch (e) {
                die(3, `${file}: version ${v.name}: the schema does not compile: ${e.message}`);
            }
            crds.set(`${crd.spec.group}/${v.name} ${crd.spec.names.kind}`, { schema, validate, file: f });
        }
    }
}

// ---- the strict walk: field names the schema does not define ----
function resolve(schema) {
    let s = schema;
    for (let depth = 0; s && s.$ref; depth++) {
        const id = s.$ref.replace(/#$/, "");
        const next = schemas.get(id);
        if (!next || depth > 50) throw new Error(`schema ${id} is not loaded`);
        s = next;
    }
    return s;
}

function isObjectSchema(s) {
    return s.type === "object" || s.properties !== undefined || s.additionalProperties !== undefined;
}

// The object-shaped schemas a non-null object value is checked against.
function objectBranches(schema) {
    const s = resolve(schema);
    if (!s) return [];
    if (Array.isArray(s.oneOf) || Array.isArray(s.anyOf)) {
        const out = [];
        for (const b of s.oneOf || s.anyOf) out.push(...objectBranches(b));
        if (isObjectSchema(s)) out.push(s);
        return out;
    }
    return isObjectSchema(s) || s.items !== undefined ? [s] : [];
}

// crd: custom resource schemas are structural: an object schema without
// properties keeps no field unless x-kubernetes-preserve-unknown-fields says so.
function walk(value, schema, at, crd, report) {
    if (value === null || typeof value !== "object") return; // scalars: the schema's own check
    const branches = objectBranches(schema);
    if (branches.length === 0) return; // a type error, reported by the schema check
    if (Array.isArray(value)) {
        const s = branches.find((b) => b.items !== undefined);
        if (s) value.forEach((v, i) => walk(v, s.items, at.concat([i]), crd, report));
        return;
    }
    const objs = branches.filter((b) => b.items === undefined);
    if (objs.length === 0) return;
    for (const key of Object.keys(value)) {
        let sub, known = false, open = false;
        for (const b of objs) {
            if (b.properties && Object.prototype.hasOwnProperty.call(b.properties, key)) {
                sub = b.properties[key]; known = true; break;
            }
        }
        if (!known) {
            for (const b of objs) {
                if (b.additionalProperties && typeof b.additionalProperties === "object") {
                    sub = b.additionalProperties; known = true; break;
                }
                if (b.additionalProperties === true || b["x-kubernetes-preserve-unknown-fields"] === true) open = true;
                // a built-in schema with neither properties nor additionalProperties
                // (RawExtension, FieldsV1) is free-form
                if (!crd && !b.properties && b.additionalProperties === undefined) open = true;
            }
        }
        if (known) walk(value[key], sub, at.concat([key]), crd, report);
        else if (!open) report(at.concat([key]), "unknown field");
    }
}

// ---- paths: ajv's JSON pointers to spec.template.spec.containers[0].name ----
function fieldPath(segs) {
    let out = "";
    for (const s of segs) {
        if (typeof s === "number") out += `[${s}]`;
        else if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(s)) out += (out ? "." : "") + s;
        else out += `[${JSON.stringify(s)}]`;
    }
    return out;
}
function pointerSegs(data, pointer) {
    const segs = [];
    let cur = data;
    for (const raw of pointer.split("/").slice(1)) {
        const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
        if (Array.isArray(cur)) {
            segs.push(Number(key));
            cur = cur[Number(key)];
        } else {
            segs.push(key);
            cur = cur && typeof cur === "object" ? cur[key] : undefined;
        }
    }
    return segs;
}
function ajvMessage(e) {
    let m = e.message || e.keyword;
    if (e.keyword === "enum" && e.params && e.params.allowedValues) {
        m += ": " + e.params.allowedValues.map((v) => JSON.stringify(v)).join(", ");
    }
    if (e.keyword === "additionalProperties" && e.params) m = "unknown field " + e.params.additionalProperty;
    return m;
}

// A oneOf that no branch matched (IntOrString, Quantity) gives one error per
// branch and one for the oneOf: say it once, with the branches' reasons.
function mergeOneOf(errors) {
    const out = [];
    const oneOfs = errors.filter((e) => e.keyword === "oneOf");
    const merged = new Set();
    for (const o of oneOfs) {
        const why = [];
        for (const e of errors) {
            if (e !== o && e.instancePath === o.instancePath && e.schemaPath.startsWith(o.schemaPath + "/")) {
                why.push(ajvMessage(e));
                merged.add(e);
            }
        }
        o.why = why;
    }
    for (const e of errors) {
        if (merged.has(e)) continue;
        out.push([e.instancePath, e.why && e.why.length ? `${ajvMessage(e)} (${e.why.join("; ")})` : ajvMessage(e)]);
    }
    return out;
}

// ---- rules the API server's admission applies that the schemas leave out ----
// Keyed "GROUP Kind". Each is stated in the schema's own field description.
const ADMISSION_RULES = {
    // the CRD: "enforce - Reject (default) warn - allow but warn"; the schema says only "string"
    "policy.sigstore.dev ClusterImagePolicy": [
        (obj, problem) => {
            const mode = obj.spec && typeof obj.spec === "object" ? obj.spec.mode : undefined;
            if (typeof mode === "string" && mode !== "enforce" && mode !== "warn") {
                problem("spec.mode", `${JSON.stringify(mode)} is neither "enforce" nor "warn" (policy-controller's admission rule; the CRD schema allows any string)`);
            }
        },
    ],
};

// ---- names ----
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
function checkNames(obj, problem) {
    const md = obj.metadata;
    if (md === undefined || md === null || typeof md !== "object" || Array.isArray(md)) {
        problem("metadata", "required: an object with a name");
        return;
    }
    if (md.name === undefined) {
        problem("metadata", "must have required property 'name'");
    } else if (typeof md.name === "string") {
        // Services need a DNS-1035 label (they become DNS names); other kinds a DNS-1123 subdomain
        if (obj.kind === "Service" && obj.apiVersion === "v1") {
            if (md.name.length > 63 || !DNS1035_LABEL.test(md.name)) {
                problem("metadata.name", `${JSON.stringify(md.name)} is not a DNS-1035 label (a Service name: lower-case letters, digits and '-', starting with a letter, at most 63 characters)`);
            }
        } else if (md.name.length > 253 || !DNS1123_SUBDOMAIN.test(md.name)) {
            problem("metadata.name", `${JSON.stringify(md.name)} is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)`);
        }
    }
    if (typeof md.namespace === "string" && (md.namespace.length > 63 || !DNS1123_LABEL.test(md.namespace))) {
        problem("metadata.namespace", `${JSON.stringify(md.namespace)} is not a DNS-1123 label`);
    }
}

// ---- one object ----
// Returns the list of problems as [fieldPath, message].
function validateObject(obj) {
    const problems = [];
    const problem = (at, msg) => problems.push([typeof at === "string" ? at : fieldPath(at), msg]);
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
        problem("", "not an object");
        return problems;
    }
    const { apiVersion, kind } = obj;
    if (typeof apiVersion !== "string" || typeof kind !== "string") {
        if (typeof apiVersion !== "string") problem("apiVersion", "must have required property 'apiVersion' (a string)");
        if (typeof kind !== "string") problem("kind", "must have required property 'kind' (a string)");
        return problems;
    }
    const cls = builtinClass(apiVersion, kind);
    const crd = cls ? null : crds.get(`${apiVersion} ${kind}`);
    if (!cls && !crd) {
        problem("", `no schema for kind ${kind} apiVersion ${apiVersion} (Kubernetes schemas of kubernetes-models ${K8S_MODELS_VERSION}; CRDs in tests/fixtures/k8s/crd)`);
        return problems;
    }
    const schemaErrors = (errors, data, prefix = []) => {
        for (const [pointer, msg] of mergeOneOf(errors)) problem(prefix.concat(pointerSegs(data, pointer)), msg);
    };
    let top;
    if (cls) {
        try {
            new cls(obj).validate();
        } catch (e) {
            if (!Array.isArray(e.errors)) throw e;
            schemaErrors(e.errors, obj);
        }
        top = { $ref: kindSchemaId(apiVersion, kind) };
    } else {
        if (!crd.validate(obj)) schemaErrors(crd.validate.errors || [], obj);
        // the API server validates the metadata of a custom resource as ObjectMeta
        require(path.join(MODULES, "@kubernetes-models", "apimachinery", "_schemas", "IoK8sApimachineryPkgApisMetaV1ObjectMeta.js")).addSchema();
        if (obj.metadata !== undefined) {
            try {
                kmValidate.validate(OBJECT_META, obj.metadata);
            } catch (e) {
                if (!Array.isArray(e.errors)) throw e;
                schemaErrors(e.errors, obj.metadata, ["metadata"]);
            }
        }
        top = Object.assign({}, crd.schema, {
            properties: Object.assign({}, crd.schema.properties, {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { $ref: OBJECT_META + "#" },
            }),
        });
    }
    walk(obj, top, [], !!crd, problem);
    checkNames(obj, problem);
    for (const rule of ADMISSION_RULES[`${apiVersion.split("/")[0]} ${kind}`] || []) rule(obj, problem);
    return problems;
}

// The id of the registered schema whose apiVersion and kind are exactly these.
function kindSchemaId(apiVersion, kind) {
    const only = (p, v) => p && Array.isArray(p.enum) && p.enum.length === 1 && p.enum[0] === v;
    for (const [id, s] of schemas) {
        if (s.properties && only(s.properties.apiVersion, apiVersion) && only(s.properties.kind, kind)) return id;
    }
    throw new Error(`the schema of ${apiVersion} ${kind} was not registered`);
}

// ---- files ----
function main(argv) {
    const files = argv.filter((a) => a !== "--");
    if (files.length === 0 || argv.some((a) => a.startsWith("-") && a !== "-" && a !== "--")) {
        const bad = argv.find((a) => a.startsWith("-") && a !== "-" && a !== "--");
        if (bad === "-h" || bad === "--help") {
            process.stdout.write(USAGE);
            process.exit(0);
        }
        process.stderr.write((bad ? `k8s-validate: unknown option ${bad}\n` : "k8s-validate: no file given\n") + USAGE);
        process.exit(2);
    }
    loadCrds();
    let total = 0, invalid = 0;
    const out = [];
    for (const file of files) {
        const name = file === "-" ? "<stdin>" : file;
        let doc;
        try {
            doc = JSON.parse(fs.readFileSync(file === "-" ? 0 : file, "utf8"));
        } catch (e) {
            out.push(`${name}: ${e.code ? "cannot read: " + e.message : "not valid JSON: " + e.message}`);
            total++; invalid++;
            continue;
        }
        let objects;
        if (doc && typeof doc === "object" && !Array.isArray(doc) && doc.kind === "List") {
            const bad = [];
            if (doc.apiVersion !== "v1") bad.push(`apiVersion ${JSON.stringify(doc.apiVersion)}: a List is apiVersion "v1"`);
            for (const k of Object.keys(doc)) {
                if (!["apiVersion", "kind", "metadata", "items"].includes(k)) bad.push(`${k}: unknown field`);
            }
            if (!Array.isArray(doc.items)) bad.push("items: must be an array of objects");
            else if (doc.items.length === 0) bad.push("items: the List is empty (nothing to validate)");
            if (bad.length) {
                for (const b of bad) out.push(`${name}: List: ${b}`);
                total++; invalid++;
                continue;
            }
            objects = doc.items.map((o, i) => [`items[${i}] `, o]);
        } else {
            objects = [["", doc]];
        }
        for (const [where, obj] of objects) {
            total++;
            const problems = validateObject(obj);
            if (problems.length === 0) continue;
            invalid++;
            const kind = obj && typeof obj === "object" && typeof obj.kind === "string" ? obj.kind : "?";
            const nm = obj && obj.metadata && typeof obj.metadata.name === "string" ? obj.metadata.name : "?";
            for (const [at, msg] of problems) out.push(`${name}: ${where}${kind}/${nm}: ${at ? at + ": " : ""}${msg}`);
        }
    }
    out.push(invalid ? `${invalid} of ${total} objects invalid` : `${total} objects valid`);
    process.stdout.write(out.join("\n") + "\n");
    process.exit(invalid ? 1 : 0);
}

const USAGE = `usage: tests/tools/k8s-validate/validate FILE...
Validates Kubernetes objects (JSON; one object or a v1 List per FILE, - for stdin)
strictly and offline: the schemas of kubernetes-models ${K8S_MODELS_VERSION}, CRDs in
tests/fixtures/k8s/crd, unknown fields refused at any depth, metadata.name checked.
Prints one line per problem and a summary; exit 0 valid, 1 invalid, 2 usage, 3 not installed.
`;

main(process.argv.slice(2));
