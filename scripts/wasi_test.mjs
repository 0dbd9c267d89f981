// Runs a wasm32-wasip1 program (a Rust test binary, a perf/ benchmark) under Node's WASI (V8,
// the engine family of Envoy's wasm VM): `node scripts/wasi_test.mjs file.wasm [args...]`.
//
// The filter's crate links the proxy-wasm host imports (`env.proxy_*`); a test never calls
// them, so each is bound to a function that throws, and the module instantiates. The exit
// code is the test binary's. Wasm has no unwinding: the first failing test aborts the run
// (non-zero exit, its message printed).
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({
  version: 'preview1',
  args: [file, ...args],
  env: { RUST_BACKTRACE: '0' },
  // The working directory (the repository), at its own absolute path: tests that read a
  // fixture by `CARGO_MANIFEST_DIR` find it.
  preopens: { [process.cwd()]: process.cwd() },
  returnOnExit: true,
});
const mod = await WebAssembly.compile(await readFile(file));
const imports = wasi.getImportObject();
for (const { module, name, kind } of WebAssembly.Module.imports(mod)) {
  if (module === 'wasi_snapshot_preview1' || kind !== 'function') continue;
  imports[module] ??= {};
  imports[module][name] = () => {
    throw new Error(`host import ${module}.${name} called from a test`);
  };
}
const instance = await WebAssembly.instantiate(mod, imports);
// proxy-wasm's SDK also exports `_initialize` (a reactor's entry), which WASI.start refuses
// next to `_start`: hand it the exports without it.
const { _initialize, ...exports } = instance.exports;
process.exitCode = wasi.start({ exports });
