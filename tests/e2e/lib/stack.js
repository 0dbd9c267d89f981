// The whole topology on free loopback ports: the dev authorization server, the Rust echo-server
// and Envoy loading the mcp_auth filter with a configuration rendered from the repository's
// envoy.yaml (tests/envoy_config.py). Every process is stopped by PID in stop().
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import {
  Proc, freePorts, httpOk, waitUntil,
} from './procs.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function firstExisting(what, candidates, hint) {
  const found = candidates.filter(Boolean).filter((p) => fs.existsSync(p));
  if (!found.length) throw new Error(`${what} not found (looked for ${candidates.filter(Boolean).join(', ')}): ${hint}`);
  // Newest build wins when both a debug and a release binary exist.
  return found.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
}

export function locateTools() {
  const env = process.env;
  return {
    node: process.execPath,
    authserver: firstExisting('authserver/server.js', [path.join(ROOT, 'authserver/server.js')], 'run from a checkout'),
    authserverDeps: firstExisting('authserver dependencies', [path.join(ROOT, 'authserver/node_modules/oidc-provider')],
      'run `bash scripts/node.sh ci authserver`'),
    echoServer: env.ECHO_SERVER_BIN || firstExisting('echo-server binary', [
      path.join(ROOT, 'target/debug/echo-server'), path.join(ROOT, 'target/release/echo-server'),
    ], 'run `cargo build -p echo-server`'),
    envoy: env.ENVOY_BIN || firstExisting('envoy', [path.join(ROOT, '.venv/bin/envoy')], 'run `make venv`'),
    python: firstExisting('python with PyYAML', [path.join(ROOT, '.venv/bin/python')], 'run `make venv`'),
    wasm: env.MCP_AUTH_WASM || firstExisting('the filter', [path.join(ROOT, 'target/wasm32-wasip1/release/mcp_auth_filter.wasm')],
      'run `make wasm`'),
  };
}

export class Stack {
  constructor() {
    this.procs = [];
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-auth-e2e-'));
  }

  async start() {
    const tools = locateTools();
    this.tools = tools;
    const [listenPort, adminPort, echoPort, authPort, callbackPort] = await freePorts(5);
    Object.assign(this, {
      listenPort, adminPort, echoPort, authPort, callbackPort,
    });
    this.issuer = `http://localhost:${authPort}/realms/my-realm`;
    this.mcpUrl = `http://localhost:${listenPort}/mcp`;
    // A loopback callback for clients of the static `mcp-client` (registered through the
    // authserver's AUTH_EXTRA_REDIRECT_URIS), instead of the Inspector's fixed default port.
    this.staticCallbackUrl = `http://127.0.0.1:${callbackPort}/oauth/callback`;
    this.authDataDir = path.join(this.dir, 'authserver-data');

    const baseEnv = { ...process.env };
    delete baseEnv.NODE_OPTIONS;

    this.authserver = this.#spawn('authserver', tools.node, [tools.authserver], {
      ...baseEnv,
      AUTH_PORT: String(authPort),
      AUTH_ISSUER: this.issuer,
      AUTH_DATA_DIR: this.authDataDir,
      AUTH_DEFAULT_RESOURCE: this.mcpUrl,
      AUTH_EXTRA_REDIRECT_URIS: this.staticCallbackUrl,
    });
    this.echo = this.#spawn('echo-server', tools.echoServer, [
      '--bind', `127.0.0.1:${echoPort}`,
      '--allowed-host', `localhost:${listenPort}`,
      '--allowed-host', `127.0.0.1:${listenPort}`,
    ], { ...baseEnv, RUST_LOG: 'info', NO_COLOR: '1' });

    await waitUntil('authserver /healthz', () => httpOk(`http://127.0.0.1:${authPort}/healthz`), { proc: this.authserver });
    await waitUntil('echo-server to accept connections', async () => {
      const res = await fetch(`http://127.0.0.1:${echoPort}/mcp`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return true;
    }, { proc: this.echo });

    await this.startGateway();
    return this;
  }

  // Envoy again on the same ports, with plugin settings changed (`--set KEY=JSON` of
  // tests/envoy_config.py): the echo-server and the authorization server keep running.
  async restartGateway(sets) {
    const old = this.envoy;
    await old.stop();
    this.procs = this.procs.filter((p) => p !== old);
    await this.startGateway(sets);
  }

  async startGateway(sets = []) {
    const { tools, listenPort, adminPort, echoPort, authPort } = this;
    const baseEnv = { ...process.env };
    delete baseEnv.NODE_OPTIONS;
    const envoyConfig = path.join(this.dir, 'envoy.yaml');
    await promisify(execFile)(tools.python, [
      path.join(ROOT, 'tests/envoy_config.py'),
      '--listen-port', String(listenPort), '--admin-port', String(adminPort),
      '--upstream-port', String(echoPort), '--auth-port', String(authPort),
      '--wasm', tools.wasm, '-o', envoyConfig, ...sets.flatMap((kv) => ['--set', kv]),
    ], { cwd: ROOT });
    this.envoy = this.#spawn('envoy', tools.envoy, [
      '-c', envoyConfig, '--concurrency', '1', '--disable-hot-restart', '--drain-time-s', '0',
      '-l', 'info', '--log-path', path.join(this.dir, 'envoy.log'),
    ], baseEnv);
    await waitUntil('Envoy /ready', async () => {
      const res = await fetch(`http://127.0.0.1:${adminPort}/ready`, { signal: AbortSignal.timeout(1000) });
      return res.ok && (await res.text()).trim() === 'LIVE';
    }, { proc: this.envoy, timeoutMs: 60000 });
    // Best effort: the filter fetches the key set at start; requests before that would wait.
    await waitUntil('the filter to load the key set', async () => (await this.stats())['mcp_auth.jwks_fetch.ok'] >= 1,
      { proc: this.envoy, timeoutMs: 15000 }).catch(() => {});
  }

  #spawn(name, command, args, env) {
    const proc = new Proc(name, command, args, { env, cwd: this.dir, logFile: path.join(this.dir, `${name}.out`) });
    this.procs.push(proc);
    return proc;
  }

  // The authserver's private keys (its data dir), for minting tokens it would have signed.
  signingKey() {
    const { keys } = JSON.parse(fs.readFileSync(path.join(this.authDataDir, 'jwks.json'), 'utf8'));
    return keys.find((k) => k.use === 'sig');
  }

  // Proxy-wasm counters, without Envoy's `wasmcustom.` prefix.
  async stats() {
    // The filter hands its counters to Envoy on each 100 ms tick: let the last ones land.
    await new Promise((resolve) => setTimeout(resolve, 150));
    const res = await fetch(`http://127.0.0.1:${this.adminPort}/stats?filter=mcp_auth`, { signal: AbortSignal.timeout(2000) });
    const stats = {};
    for (const line of (await res.text()).split('\n')) {
      const m = /^(?:wasmcustom\.)?(mcp_auth\.[^:]+): (\d+)$/.exec(line.trim());
      if (m) stats[m[1]] = Number(m[2]);
    }
    return stats;
  }

  // Requests the echo-server has answered (tower-http logs one line per response).
  echoRequests() {
    return this.echo.log().split('\n').filter((l) => l.includes('finished processing request')).length;
  }

  tails(lines = 30) {
    const envoyLog = path.join(this.dir, 'envoy.log');
    const envoyTail = fs.existsSync(envoyLog)
      ? `--- last ${lines} lines of ${envoyLog} ---\n${fs.readFileSync(envoyLog, 'utf8').split('\n').slice(-lines).join('\n')}`
      : '';
    return [...this.procs.map((p) => p.tail(lines)), envoyTail].join('\n');
  }

  async stop() {
    await Promise.all([...this.procs].reverse().map((p) => p.stop()));
    if (!process.env.E2E_KEEP_TMP) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
