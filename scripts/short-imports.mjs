// Shortens the names of the .wasm's imports from the JS glue, in the .wasm and in the glue
// alike. wasm-bindgen names each import `__wbg_<name>_<16 hex digits of a hash>` (e.g.
// `__wbg_send_cd51063ca1be4d0f`); the hash makes the name unique but is random text that
// gzip cannot compress, and each name is written twice (the .wasm's import section and the
// glue's import object, too far apart for gzip to share): about 1.7 KB of the package's
// gzip size for its ~70 imports (docs/SDK.md, "Size"). Each import of the glue's module
// gets the shortest name free: its readable part without the hash (`__wbg_send`), with a
// number where two share it (`__wbg_new`, `__wbg_new1`, ...).
//
//   node scripts/short-imports.mjs WASM GLUE_JS      (both rewritten in place)
//
// The glue must name each import exactly once (as its key in the import object); any
// other count fails the run, so a glue this script does not understand is never shipped.
// The package's smoke tests (scripts/pkg-smoke.mjs) then instantiate the renamed module:
// an import the glue no longer provides fails there.

import { readFileSync, writeFileSync } from "node:fs";

const [wasmPath, gluePath] = process.argv.slice(2);
if (!wasmPath || !gluePath) {
  console.error("usage: node scripts/short-imports.mjs WASM GLUE_JS");
  process.exit(2);
}
function fail(message) {
  console.error(`short-imports: ${message}`);
  process.exit(1);
}

const MODULE = "./hms_client_bg.js";
const wasm = readFileSync(wasmPath);
let glue = readFileSync(gluePath, "utf8");

// --- reading and writing the binary format's pieces ---
function readU32(buf, pos) {
  let result = 0, shift = 0, byte;
  do {
    byte = buf[pos++];
    result |= (byte & 0x7f) << shift;
    shift += 7;
  } while (byte & 0x80);
  return [result >>> 0, pos];
}
function u32(n) {
  const out = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return Buffer.from(out);
}
function readName(buf, pos) {
  const [len, start] = readU32(buf, pos);
  return [buf.toString("utf8", start, start + len), start + len];
}
function name(s) {
  const bytes = Buffer.from(s, "utf8");
  return Buffer.concat([u32(bytes.length), bytes]);
}
// The end of an import's description (after its kind byte).
function skipDesc(buf, kind, pos) {
  const limits = (p) => {
    const flags = buf[p++];
    [, p] = readU32(buf, p); // min (u64 LEBs of memory64 end the same way)
    if (flags & 1) [, p] = readU32(buf, p); // max
    return p;
  };
  switch (kind) {
    case 0: return readU32(buf, pos)[1]; // function: type index
    case 1: return limits(pos + 1); // table: reference type, limits
    case 2: return limits(pos); // memory
    case 3: return pos + 2; // global: value type, mutability
    case 4: return readU32(buf, pos + 1)[1]; // tag: attribute, type index
    default: fail(`import kind ${kind} unknown`);
  }
}

if (wasm.readUInt32LE(0) !== 0x6d736100) fail(`${wasmPath} is not a .wasm`);
const parts = [wasm.subarray(0, 8)];
const renames = new Map();
let pos = 8, found = false;
while (pos < wasm.length) {
  const id = wasm[pos];
  const [size, start] = readU32(wasm, pos + 1);
  const end = start + size;
  if (id !== 2) {
    parts.push(wasm.subarray(pos, end));
    pos = end;
    continue;
  }
  found = true;
  const taken = new Set();
  let [count, p] = readU32(wasm, start);
  const body = [u32(count)];
  for (let i = 0; i < count; i++) {
    let module, field;
    [module, p] = readName(wasm, p);
    [field, p] = readName(wasm, p);
    const descStart = p;
    p = skipDesc(wasm, wasm[p], p + 1);
    let short = field;
    if (module === MODULE) {
      const base = field.replace(/_[0-9a-f]{16}$/, "");
      short = base;
      for (let n = 1; taken.has(short); n++) short = `${base}${n}`;
      renames.set(field, short);
    }
    taken.add(short);
    body.push(name(module), name(short), wasm.subarray(descStart, p));
  }
  if (p !== end) fail("the import section did not parse to its end");
  const section = Buffer.concat(body);
  parts.push(Buffer.from([2]), u32(section.length), section);
  pos = end;
}
if (!found) fail("no import section");

// Every renamed import is exactly one key of the glue's import object.
for (const [long, short] of renames) {
  if (long === short) continue;
  const uses = glue.split(long).length - 1;
  if (uses !== 1) fail(`the glue names ${long} ${uses} times, not once`);
  if (new RegExp(`\\b${short}\\b`).test(glue)) fail(`the glue already uses the name ${short}`);
  glue = glue.replace(long, short);
}

writeFileSync(wasmPath, Buffer.concat(parts));
writeFileSync(gluePath, glue);
console.log(`short-imports: ${renames.size} imports renamed`);
