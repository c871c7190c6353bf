/**
 * `--import ./bench/lib/cpu-profile.mjs`: a V8 CPU profile of the whole process, written to
 * `$KILN_CPU_PROFILE_DIR/<pid>.cpuprofile` as it exits. Node refuses `--cpu-prof` in NODE_OPTIONS,
 * which is how the bench reaches its child processes, so this starts the profiler through the inspector.
 * Plain JavaScript: NODE_OPTIONS imports load before tsx's.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';
import process from 'node:process';

const dir = process.env.KILN_CPU_PROFILE_DIR ?? 'bench/results/profiles';
const session = new Session();
session.connect();
session.post('Profiler.enable');
session.post('Profiler.start');

// An in-process inspector session answers synchronously, so this works inside an 'exit' handler.
process.once('exit', () => {
  session.post('Profiler.stop', (error, result) => {
    if (error) return;
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `${process.pid}.cpuprofile`), JSON.stringify(result.profile));
  });
});
