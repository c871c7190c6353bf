import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Git-ignored folder where tools built from Go modules are kept between runs. */
export const TOOLS_BIN = path.resolve(fileURLToPath(new URL('../../.tools/bin', import.meta.url)));

/** A command-line tool the project builds from a pinned Go module when the machine lacks it. */
export interface GoTool {
  binary: string;
  module: string;
}

/** MinIO publishes no semver tags; this pseudo-version is a 2026-02 commit whose go.mod has no `replace`. */
export const MINIO: GoTool = {
  binary: 'minio',
  module: 'github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c',
};

export async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const PROGRESS_INTERVAL_MS = 15_000;

async function findOnPath(binary: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, binary);
    if (dir && (await isExecutable(candidate))) return candidate;
  }
  return undefined;
}

/**
 * Returns the path of `tool`: the copy in `.tools/bin`, else one on PATH, else a fresh `go install`
 * (minutes on a new machine, then cached).
 */
export async function ensureGoTool(
  tool: GoTool,
  log: (line: string) => void = console.error,
): Promise<string> {
  const cached = path.join(TOOLS_BIN, tool.binary);
  if (await isExecutable(cached)) return cached;
  const onPath = await findOnPath(tool.binary);
  if (onPath) return onPath;
  log(`building ${tool.module} into ${TOOLS_BIN} with Go (first run only)`);
  const startedAt = Date.now();
  const progress = setInterval(
    () => log(`  still building ${tool.binary}: ${Math.round((Date.now() - startedAt) / 1000)} s`),
    PROGRESS_INTERVAL_MS,
  );
  try {
    await execFileAsync('go', ['install', tool.module], {
      env: { ...process.env, GOBIN: TOOLS_BIN },
      maxBuffer: 64 * 1024 * 1024,
    });
  } finally {
    clearInterval(progress);
  }
  log(`built ${tool.binary} in ${Math.round((Date.now() - startedAt) / 1000)} s`);
  return cached;
}
