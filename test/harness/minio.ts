import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MINIO, ensureGoTool } from '../../src/devstack/go-tools.js';
import { freePort } from './free-port.js';

/** A throwaway MinIO server on 127.0.0.1 with its own data folder and root credentials. */
export interface MinioServer {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Stops the server and deletes everything it stored. */
  stop(): Promise<void>;
}

const REGION = 'us-east-1';
const STARTUP_TIMEOUT_MS = 60_000;
const SHUTDOWN_GRACE_MS = 10_000;
/** Enough of the server's own output to explain why it died, without flooding the test report. */
const OUTPUT_TAIL_CHARS = 4_000;

/** Keeps the last few thousand characters the process wrote; reading the pipes also stops them filling. */
function captureOutput(child: ChildProcess): () => string {
  let tail = '';
  const append = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  child.on('error', (error) => append(Buffer.from(`\n${error.message}\n`)));
  return () => tail;
}

async function isLive(endpoint: string): Promise<boolean> {
  try {
    const response = await fetch(`${endpoint}/minio/health/live`, { signal: AbortSignal.timeout(1_000) });
    return response.status === 200;
  } catch {
    return false;
  }
}

async function waitUntilLive(endpoint: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
      throw new Error(`minio exited before it was live:\n${output()}`);
    }
    if (await isLive(endpoint)) return;
    await sleep(100);
  }
  throw new Error(`minio was not live after ${STARTUP_TIMEOUT_MS} ms:\n${output()}`);
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const forceKill = setTimeout(() => child.kill('SIGKILL'), SHUTDOWN_GRACE_MS);
  await exited;
  clearTimeout(forceKill);
}

/** Starts MinIO (building it on first use) and resolves once it answers its liveness probe. */
export async function startMinio(): Promise<MinioServer> {
  const binary = await ensureGoTool(MINIO);
  const port = await freePort();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-minio-'));
  const accessKeyId = `kiln-${randomBytes(6).toString('hex')}`;
  const secretAccessKey = randomBytes(24).toString('hex');
  const child = spawn(binary, ['server', dataDir, '--address', `127.0.0.1:${port}`, '--quiet'], {
    env: {
      ...process.env,
      MINIO_ROOT_USER: accessKeyId,
      MINIO_ROOT_PASSWORD: secretAccessKey,
      MINIO_SITE_REGION: REGION,
      // No console (so no second port) and no update checks: the machine may have no internet.
      MINIO_BROWSER: 'off',
      MINIO_UPDATE: 'off',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = captureOutput(child);
  const endpoint = `http://127.0.0.1:${port}`;

  const stop = async (): Promise<void> => {
    await stopProcess(child);
    await rm(dataDir, { recursive: true, force: true });
  };

  try {
    await waitUntilLive(endpoint, child, output);
  } catch (error) {
    await stop();
    throw error;
  }
  return { endpoint, region: REGION, accessKeyId, secretAccessKey, stop };
}
