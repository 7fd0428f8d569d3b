// The real daemon for the browser tests, as tests/integration/harness.py
// starts it: `credstore init` into a temporary dir (the admin key is its one
// stdout line), `serve --listen 127.0.0.1:0`, the port read from its log.
import {spawn, spawnSync} from 'node:child_process';
import {mkdtempSync, rmSync, openSync, readFileSync, closeSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

const BIN = process.env.CREDSTORE_BIN || new URL('../../build/credstore', import.meta.url).pathname;

export async function startDaemon(extra = []) {
  const dir = mkdtempSync(join(tmpdir(), 'credstore-browser-'));
  const data = join(dir, 'data');
  const init = spawnSync(BIN, ['init', '--data', data], {encoding: 'utf8', timeout: 60000});
  if (init.status !== 0) throw new Error('init failed: ' + init.stderr);
  const admin = JSON.parse(init.stdout);
  const logPath = join(dir, 'serve.log');
  const log = openSync(logPath, 'a');
  const proc = spawn(BIN, ['serve', '--data', data, '--listen', '127.0.0.1:0', ...extra],
    {stdio: ['ignore', 'ignore', log]});
  const deadline = Date.now() + 20000;
  let port = null;
  while (!port && Date.now() < deadline) {
    const m = readFileSync(logPath, 'utf8').match(/listening on \S+ port (\d+)/);
    if (m) port = Number(m[1]);
    else if (proc.exitCode !== null) throw new Error('serve exited: ' + readFileSync(logPath, 'utf8'));
    else await new Promise((r) => setTimeout(r, 20));
  }
  if (!port) {
    proc.kill('SIGKILL');
    throw new Error('serve did not start: ' + readFileSync(logPath, 'utf8'));
  }
  const url = 'http://127.0.0.1:' + port;
  const basic = (id, secret) => 'Basic ' + Buffer.from(id + ':' + secret).toString('base64');
  return {
    url, admin, logPath,
    auth: basic(admin.id, admin.secret),
    basic,
    /** A call as the admin (or @p auth): {status, body, headers}. */
    async api(method, path, body, auth) {
      const r = await fetch(url + '/api/v1' + path, {
        method, headers: {Authorization: auth || this.auth, 'Content-Type': 'application/json'},
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15000),
      });
      const text = await r.text();
      return {status: r.status, body: text ? JSON.parse(text) : null, headers: r.headers};
    },
    /** SIGTERM; resolves to the exit code (SIGKILL after 20 s). */
    async stop() {
      const done = new Promise((r) => proc.once('exit', (code, sig) => r(code ?? sig)));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 20000);
      const rc = await done;
      clearTimeout(t);
      closeSync(log);
      const text = readFileSync(logPath, 'utf8');
      rmSync(dir, {recursive: true, force: true});
      return {rc, log: text};
    },
  };
}
