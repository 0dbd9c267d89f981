import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
const [wasmPath, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: ['decide-wasm', ...args], env: {} });
const module = await WebAssembly.compile(await readFile(wasmPath));
const imports = wasi.getImportObject();
// The library's host glue links proxy-wasm imports; the benchmark never calls them.
imports.env = {};
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module === 'env') imports.env[imp.name] = () => { throw new Error(`host call ${imp.name}`); };
}
const instance = await WebAssembly.instantiate(module, imports);
// Node refuses to `start` a module that also exports `_initialize` (the filter's entry point):
// hand it a view without that export.
wasi.start({ exports: { memory: instance.exports.memory, _start: instance.exports._start } });
