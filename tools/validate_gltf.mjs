// Validates a glTF 2.0 file (.glb or .gltf with embedded buffers) with the Khronos glTF-Validator
// (npm `gltf-validator`, pinned in tools/node/package.json; install: `npm ci --prefix tools/node`).
//
// Usage: node tools/validate_gltf.mjs FILE
// Prints a one-line summary and every issue (severity, code, JSON pointer, message), then exits
//   0  the file has 0 errors and 0 warnings (infos and hints are listed but allowed),
//   1  the file has errors or warnings,
//   2  usage error, unreadable file, or the validator is not installed.
// The validator's location can be overridden with GLTF_VALIDATOR_DIR (a node_modules/gltf-validator).

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const file = process.argv[2];
if (!file || process.argv.length > 3) {
  console.error('usage: node tools/validate_gltf.mjs FILE');
  process.exit(2);
}

const require = createRequire(import.meta.url);
const moduleDir = process.env.GLTF_VALIDATOR_DIR || join(here, 'node', 'node_modules', 'gltf-validator');
let validator;
try {
  validator = require(moduleDir);
} catch (e) {
  console.error(`gltf-validator not found at ${moduleDir}: run \`npm ci --prefix tools/node\` ` +
    `in the repository root (needs node >= 18 and npm). (${e.message})`);
  process.exit(2);
}

let bytes;
try {
  bytes = new Uint8Array(readFileSync(file));
} catch (e) {
  console.error(`${file}: cannot read: ${e.message}`);
  process.exit(2);
}

const SEVERITY = ['ERROR', 'WARNING', 'INFO', 'HINT'];
let report;
try {
  report = await validator.validateBytes(bytes, {
    uri: file,
    maxIssues: 0, // report every issue
    // A .glb carries its buffer; any external resource is an error of the file itself.
    externalResourceFunction: (uri) => Promise.reject(new Error(`external resource ${uri} not allowed`)),
  });
} catch (e) {
  console.log(`${file}: the validator failed: ${e}`);
  process.exit(1);
}

const is = report.issues;
console.log(`${file}: ${is.numErrors} errors, ${is.numWarnings} warnings, ${is.numInfos} infos, ` +
  `${is.numHints} hints (glTF-Validator ${report.validatorVersion})`);
// Every issue up to MAX_LISTED, then a count per severity and code for the rest.
const MAX_LISTED = 50;
const rest = new Map();
is.messages.forEach((m, i) => {
  const sev = SEVERITY[m.severity] ?? m.severity;
  if (i < MAX_LISTED) {
    const where = m.pointer !== undefined ? m.pointer : (m.offset !== undefined ? `byte ${m.offset}` : '');
    console.log(`  ${sev} ${m.code} ${where}: ${m.message}`);
  } else {
    const key = `${sev} ${m.code}`;
    rest.set(key, (rest.get(key) ?? 0) + 1);
  }
});
for (const [key, n] of rest) console.log(`  ... and ${n} more ${key}`);
process.exit(is.numErrors + is.numWarnings > 0 ? 1 : 0);
