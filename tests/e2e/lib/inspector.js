// Runs the MCP Inspector CLI (a real MCP client) as a child process, headless: a fresh HOME per
// run, in-memory secret store, and the test playing the user when it asks for a browser.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { track } from './procs.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const INSPECTOR_BIN = path.resolve(HERE, '../node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js');

/**
 * `mcp-inspector --cli ...args`. `onNavigate(url)` is called for every "Please navigate to: URL"
 * the CLI prints (it then waits on its OAuth callback listener until the user arrives there).
 * Resolves to { code, signal, stdout, stderr, json, navigated, userError } once the CLI exits;
 * the CLI is killed by PID after `timeoutMs`.
 */
export async function runInspector(args, options) {
  return runNodeClient([INSPECTOR_BIN, '--cli', ...args], options);
}

// Any node script that prints "Please navigate to: URL" and waits for the user (see runInspector).
export async function runNodeClient(argv, {
  workdir, onNavigate, timeoutMs = 60000, env = {},
}) {
  const home = fs.mkdtempSync(path.join(workdir, 'inspector-home-'));
  // The CLI tries to open a browser when it wants a login; make sure none starts on a developer's
  // desktop: a no-op xdg-open comes first on PATH, and there is no display.
  const stubBin = path.join(home, 'bin');
  fs.mkdirSync(stubBin);
  for (const opener of ['xdg-open', 'open', 'sensible-browser', 'x-www-browser', 'wslview']) {
    fs.writeFileSync(path.join(stubBin, opener), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  }
  const childEnv = {
    ...process.env,
    HOME: home,
    PATH: `${stubBin}${path.delimiter}${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH}`,
    MCP_INSPECTOR_SECRET_STORE: 'memory',
    MCP_AUTO_OPEN_ENABLED: 'true',
    NO_COLOR: '1',
    BROWSER: path.join(stubBin, 'xdg-open'),
    ...env,
  };
  for (const k of ['DISPLAY', 'WAYLAND_DISPLAY', 'NODE_OPTIONS', 'MCP_OAUTH_CALLBACK_URL', 'MCP_CLIENT_CONFIG_PATH']) {
    if (!(k in env)) delete childEnv[k];
  }

  const child = spawn(process.execPath, argv, {
    cwd: home, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  let stdout = '';
  let stderr = '';
  let pending = '';
  const navigated = [];
  const userTasks = [];
  let userError;
  child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderr += d;
    pending += d;
    const lines = pending.split('\n');
    pending = lines.pop();
    for (const line of lines) {
      const m = /Please navigate to:\s*(\S+)/.exec(line);
      if (m && onNavigate) {
        navigated.push(m[1]);
        userTasks.push(Promise.resolve().then(() => onNavigate(m[1])).catch((err) => { userError ??= err; }));
      }
    }
  });
  const timer = setTimeout(() => {
    stderr += `\n[e2e] inspector timed out after ${timeoutMs} ms, killing pid ${child.pid}\n`;
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  }, timeoutMs);
  const { code, signal } = await new Promise((resolve) => {
    child.once('exit', (c, s) => resolve({ code: c, signal: s }));
    child.once('error', (err) => {
      stderr += `\n[e2e] cannot run the inspector: ${err.message}\n`;
      resolve({ code: -1, signal: null });
    });
  });
  clearTimeout(timer);
  await Promise.all(userTasks);
  let json;
  try {
    json = JSON.parse(stdout);
  } catch {
    json = undefined;
  }
  const result = {
    code, signal, stdout, stderr, json, navigated, userError,
  };
  result.describe = () => `${argv.map((a) => path.basename(a)).join(' ')}\nexit ${code}${signal ? ` (${signal})` : ''}\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}${userError ? `\n--- user agent ---\n${userError.stack}` : ''}`;
  return result;
}
