// Validates an AsyncAPI document with the official parser; prints its diagnostics as JSON
// lines and exits 1 on any error or warning. Usage: node validate.mjs <document.json>
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const path = process.argv[2];
const parser = new Parser();
const { diagnostics } = await parser.parse(await readFile(path, "utf8"));
// Severity: 0 error, 1 warning, 2 information, 3 hint.
let failed = false;
for (const d of diagnostics) {
  console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
  if (d.severity <= 1) failed = true;
}
process.exit(failed ? 1 : 0);
