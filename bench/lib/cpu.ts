import { readdir, readFile } from 'node:fs/promises';

/** Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  pid: number;
  ppid: number;
  cpuSeconds: number;
}

async function statOf(pid: number): Promise<ProcStat | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: fields count from after it.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const cpuTicks = Number(fields[11]) + Number(fields[12]);
    return { pid, ppid: Number(fields[1]), cpuSeconds: cpuTicks / TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}

async function allProcesses(): Promise<ProcStat[]> {
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name)).map(Number);
  return (await Promise.all(pids.map(statOf))).filter((stat): stat is ProcStat => stat !== undefined);
}

async function cmdline(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
}

/** Processes counted together: one by pid, or those whose command line holds a piece of text. */
export interface ProcessGroup {
  pid?: number;
  cmdlineIncludes?: string;
  /** Their child processes too (PostgreSQL's backends). */
  descendants?: boolean;
}

/** CPU seconds used so far by each named group of processes (a process and all its descendants). */
export type CpuReading = Record<string, number>;

/**
 * Reads CPU time per component of the stack: processes found by a piece of their command line (the
 * Temporal dev server and PostgreSQL by their ports) or by pid; PostgreSQL with its backends.
 */
export class CpuMeter {
  constructor(private readonly groups: Record<string, ProcessGroup>) {}

  async read(): Promise<CpuReading> {
    const processes = await allProcesses();
    const children = new Map<number, ProcStat[]>();
    for (const p of processes) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
    const reading: CpuReading = {};
    for (const [name, { pid, cmdlineIncludes, descendants }] of Object.entries(this.groups)) {
      const roots =
        pid !== undefined
          ? processes.filter((p) => p.pid === pid)
          : (
              await Promise.all(
                processes.map(async (p) => ((await cmdline(p.pid)).includes(cmdlineIncludes!) ? [p] : [])),
              )
            ).flat();
      let seconds = 0;
      const queue = [...roots];
      while (queue.length > 0) {
        const next = queue.pop()!;
        seconds += next.cpuSeconds;
        if (descendants) queue.push(...(children.get(next.pid) ?? []));
      }
      reading[name] = seconds;
    }
    return reading;
  }
}

/** CPU milliseconds per unit of work between two readings: the whole stack (every group), and each group. */
export function cpuMsPer(before: CpuReading, after: CpuReading, units: number, unit: string) {
  const perGroup = Object.keys(after).map(
    (name) => [name, (((after[name] ?? 0) - (before[name] ?? 0)) * 1000) / units] as const,
  );
  return {
    [`cpu_ms_per_${unit}`]: perGroup.reduce((sum, [, ms]) => sum + ms, 0),
    ...Object.fromEntries(perGroup.map(([name, ms]) => [`cpu_ms_per_${unit}_${name}`, ms])),
  };
}

/**
 * The servers the bench shares between designs, found by the ports in its environment: the Temporal
 * dev server, PostgreSQL with its backends, and MinIO (Kiln's object store here).
 */
export function sharedServer(name: 'temporal' | 'postgres' | 'storage'): ProcessGroup {
  switch (name) {
    case 'temporal': {
      const port = process.env.KILN_TEST_TEMPORAL_ADDRESS!.split(':').at(-1)!;
      return { cmdlineIncludes: `start-dev --ip 127.0.0.1 --port ${port} ` };
    }
    case 'postgres':
      return {
        cmdlineIncludes: ` -p ${new URL(process.env.KILN_TEST_PG_BASE_URL!).port} `,
        descendants: true,
      };
    case 'storage':
      return { cmdlineIncludes: `--address ${new URL(process.env.KILN_TEST_S3_ENDPOINT!).host} ` };
  }
}
