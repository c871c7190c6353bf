import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { freePort } from './harness/free-port.js';
import { captureOutput } from './harness/process-output.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 20_000;

async function accepts(port: number): Promise<boolean> {
  const socket = connect({ port, host: '127.0.0.1' });
  try {
    await once(socket, 'connect');
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

async function closedWithin(port: number, ms: number): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline;) {
    if (!(await accepts(port))) return true;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return false;
}

/**
 * `npm run services` (the embedded PostgreSQL and Temporal dev server) and `npm start` (the whole
 * service), on ports and a data folder of the test's own, started through npm as a person starts them,
 * so that npm's handling of signals is tested too.
 */
describe('npm start, npm run services and the users CLI on the embedded defaults', () => {
  let dataDir: string;
  let env: NodeJS.ProcessEnv;
  let ports: { postgres: number; temporal: number; ui: number; api: number; workerHttp: number };

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-services-'));
    // As a data folder normally is: under root, PostgreSQL runs as another user, who must reach it.
    await chmod(dataDir, 0o755);
    ports = {
      postgres: await freePort(),
      temporal: await freePort(),
      ui: await freePort(),
      api: await freePort(),
      workerHttp: await freePort(),
    };
    env = {
      ...process.env,
      // Unset, so that the embedded defaults are what runs.
      DATABASE_URL: '',
      TEMPORAL_ADDRESS: '',
      KILN_DATA_DIR: dataDir,
      EMBEDDED_POSTGRES_PORT: String(ports.postgres),
      TEMPORAL_DEV_PORT: String(ports.temporal),
      TEMPORAL_DEV_UI_PORT: String(ports.ui),
      PORT: String(ports.api),
      WORKER_HTTP_PORT: String(ports.workerHttp),
    };
  });
  after(() => rm(dataDir, { recursive: true, force: true }));

  const users = async (...args: string[]) =>
    (await promisify(execFile)('npm', ['run', '--silent', 'users', '--', ...args], { cwd: ROOT, env }))
      .stdout;

  /** `npm run <script>` until it prints `ready`. */
  async function startNpm(script: string, ready: string): Promise<ChildProcess> {
    const child = spawn('npm', ['run', script], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const output = captureOutput(child);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!output.text().includes(ready)) {
      assert.equal(child.exitCode, null, `npm run ${script} exited: ${output.text().slice(-2000)}`);
      assert.ok(Date.now() < deadline, `npm run ${script} not ready: ${output.text().slice(-2000)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return child;
  }

  test('a user created while the services run is there after they stop; SIGTERM to npm stops every server', async () => {
    const services = await startNpm('services', 'Services are running');
    assert.match(await users('create', 'alice'), /API key: kiln_/);
    assert.match(await users('list'), /\talice\t/);

    const exited = once(services, 'exit');
    services.kill('SIGTERM');
    await exited;
    assert.ok(await closedWithin(ports.postgres, STOP_TIMEOUT_MS), 'PostgreSQL still listens after the stop');
    assert.ok(await closedWithin(ports.temporal, STOP_TIMEOUT_MS), 'the Temporal dev server still listens');
  });

  test('with nothing running, the users CLI starts the embedded PostgreSQL for its own length', async () => {
    assert.equal(await accepts(ports.postgres), false);
    assert.match(await users('list'), /\talice\t/);
    assert.ok(await closedWithin(ports.postgres, STOP_TIMEOUT_MS), 'the CLI left PostgreSQL running');
  });

  test('npm start runs the whole service on them, and SIGINT to npm alone (no terminal) stops all of it', async () => {
    const kiln = await startNpm('start', 'Kiln is running');
    const health = await fetch(`http://127.0.0.1:${ports.api}/healthz`);
    assert.equal(health.status, 200);

    const exited = once(kiln, 'exit');
    kiln.kill('SIGINT');
    await exited;
    for (const [name, port] of Object.entries(ports)) {
      assert.ok(await closedWithin(port, STOP_TIMEOUT_MS), `${name} still listens on ${port} after the stop`);
    }
  });
});
