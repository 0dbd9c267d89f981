// Child processes for the end-to-end tests: started with their output in a log file, stopped by
// PID (SIGTERM, then SIGKILL), readiness by polling.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const live = new Set();

// Free loopback ports, distinct from each other: every socket stays bound until all are chosen.
export async function freePorts(count) {
  const servers = [];
  try {
    for (let i = 0; i < count; i += 1) {
      const srv = net.createServer();
      await new Promise((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', resolve);
      });
      servers.push(srv);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => { s.close(resolve); })));
  }
}

export class Proc {
  constructor(name, command, args, { env, cwd, logFile }) {
    this.name = name;
    this.logFile = logFile;
    const out = fs.openSync(logFile, 'a');
    this.child = spawn(command, args, {
      cwd, env, stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    this.pid = this.child.pid;
    this.exit = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        live.delete(this);
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      });
    });
    this.child.once('error', (err) => {
      fs.appendFileSync(logFile, `\n[e2e] failed to start ${command}: ${err.message}\n`);
    });
    live.add(this);
  }

  get running() {
    return this.exitStatus === undefined && this.pid !== undefined;
  }

  log() {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  tail(lines = 40) {
    return `--- last ${lines} lines of ${this.name} (${this.logFile}) ---\n${this.log().split('\n').slice(-lines).join('\n')}`;
  }

  async stop(timeoutMs = 5000) {
    if (!this.running) return this.exitStatus;
    try {
      process.kill(this.pid, 'SIGTERM');
    } catch {
      return this.exit;
    }
    const done = await Promise.race([this.exit, sleep(timeoutMs).then(() => undefined)]);
    if (done) return done;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    return this.exit;
  }
}

// Children started elsewhere (the Inspector runs) join the last-resort cleanup below.
export function track(child) {
  const entry = { pid: child.pid };
  live.add(entry);
  child.once('exit', () => live.delete(entry));
}

// Last resort if the test process itself is ending with children alive.
process.on('exit', () => {
  for (const p of live) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

// Polls `check` (async, truthy when ready) until it succeeds, `proc` dies, or the time is up.
export async function waitUntil(what, check, { proc, timeoutMs = 30000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    if (proc && !proc.running) {
      throw new Error(`${proc.name} exited (${JSON.stringify(proc.exitStatus)}) while waiting for ${what}\n${proc.tail()}`);
    }
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError.message})` : ''}${proc ? `\n${proc.tail()}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

export async function httpOk(url, timeoutMs = 1000) {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  await res.arrayBuffer();
  return res.ok;
}
