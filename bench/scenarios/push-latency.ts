import { startProviderCall, updateProgress } from '../../src/db/job-repository.js';
import type { ApiTarget } from '../../test/harness/job-watcher.js';
import { allWithin, atRate, JobWatcher, submitMany, type Watched } from '../lib/jobs.js';
import { openaiBody, QUEUE_ONLY_ENV } from '../lib/openai-setup.js';
import { repeat, type RunSettings, type Scenario } from '../lib/scenario.js';
import { benchContext, spawnApiProcess } from '../lib/stack.js';
import { latencyFigures } from '../lib/stats.js';

const JOBS = 100;
const SOCKETS = 10;
const WRITES_PER_SECOND = 100;

/** When the message carrying `progress` for a job arrived, waiting for it if it has not yet. */
async function arrivalOf(watched: Watched, progress: number, timeoutMs = 10_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const message = watched.messages.find((m) => m.progress === progress && m.status === 'running');
    if (message) return message.at;
    if (performance.now() > deadline) throw new Error(`progress ${progress} never arrived`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Job-table change → WebSocket message received, through NOTIFY and the API's event hub. */
export const pushLatency: Scenario = {
  name: 'push',
  title: 'push latency',
  conditions: (quick) =>
    `${JOBS} running jobs watched over ${SOCKETS} sockets; ${WRITES_PER_SECOND} progress writes/s for ` +
    `${quick ? 4 : 10} s through the job repository (the worker's own write path); latency = write started ` +
    '→ message received (`from_commit` = write committed → received); 1 API process, no worker',
  targets: [{ figure: 'push_p99_ms', label: 'p99 ≤ 50 ms', op: '<=', value: 50 }],
  async run(settings: RunSettings) {
    const ctx = await benchContext(QUEUE_ONLY_ENV);
    try {
      const api = await spawnApiProcess(ctx);
      const user: ApiTarget = { url: api.url, apiKey: ctx.apiKey };
      const submitted = await submitMany(user, JOBS, 10, (i) => openaiBody(`push ${i}`));
      const ids = submitted.map((s) => s.id);
      // Running, as a worker's first write makes them: only running jobs take progress.
      for (const id of ids) await startProviderCall(ctx.database.db, id, true);
      const watcher = await JobWatcher.open(user, SOCKETS);
      const watched = ids.map((id) => watcher.watch(id));
      await allWithin(
        watched.map((w) => arrivalOf(w, 0)),
        30_000,
        'catch-up',
      );
      let progress = 0;
      const results = await repeat(settings, async () => {
        const writes: Promise<{ latency: number; fromCommit: number }>[] = [];
        await atRate(WRITES_PER_SECOND, settings.quick ? 4 : 10, (index) => {
          const job = index % JOBS;
          if (job === 0) progress += 1;
          const value = progress;
          const startedAt = performance.now();
          writes.push(
            updateProgress(ctx.database.db, ids[job]!, value).then(async () => {
              const committedAt = performance.now();
              const at = await arrivalOf(watched[job]!, value);
              return { latency: at - startedAt, fromCommit: at - committedAt };
            }),
          );
        });
        const samples = await Promise.all(writes);
        return {
          ...latencyFigures(
            'push',
            samples.map((s) => s.latency),
          ),
          ...latencyFigures(
            'from_commit',
            samples.map((s) => s.fromCommit),
          ),
          samples: samples.length,
        };
      });
      watcher.close();
      return results;
    } finally {
      await ctx.cleanup();
    }
  },
};
