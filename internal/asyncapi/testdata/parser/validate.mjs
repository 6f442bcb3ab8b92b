// Validates an AsyncAPI document with the official parser and prints each
// diagnostic as "severity path: message"; exits 1 when any is an error.
//   node validate.mjs ../../../../docs/asyncapi.yaml
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate.mjs DOCUMENT');
  process.exit(2);
}
const severities = ['error', 'warning', 'info', 'hint'];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'), { source: file });
let errors = 0;
for (const d of diagnostics) {
  const severity = severities[d.severity] ?? String(d.severity);
  if (d.severity === 0) errors++;
  console.log(`${severity} ${d.path.join('.') || '(document)'}: ${d.message} [${d.code}]`);
}
if (errors > 0 || !document) {
  console.log(`${errors} error(s)`);
  process.exit(1);
}
console.log(`valid: AsyncAPI ${document.version()}, ${document.channels().length} channels, ${document.operations().length} operations, ${document.components().messages().length} messages`);
