import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { startProviderCall } from '../../src/db/job-repository.js';
import type { ServerMessage } from '../../src/api/job-stream.js';
import type { ApiTarget } from '../../test/harness/job-watcher.js';
import { allWithin, submitMany } from '../lib/jobs.js';
import { openaiBody, QUEUE_ONLY_ENV } from '../lib/openai-setup.js';
import { repeat, type RunSettings, type Scenario } from '../lib/scenario.js';
import { benchContext, buildForProduction, rssBytes, spawnApiProcess } from '../lib/stack.js';

const SUBSCRIPTIONS = 1000;
const MB = 1024 * 1024;

/** One socket subscribed to one job; resolves with the socket once `events` messages arrived. */
function subscriber(api: ApiTarget, jobId: string) {
  const socket = new WebSocket(`${api.url.replace(/^http/, 'ws')}/v1/stream`, {
    headers: { Authorization: `Bearer ${api.apiKey}` },
  });
  let received = 0;
  const waiters: { count: number; resolve(): void }[] = [];
  socket.on('message', (data: Buffer) => {
    const message = JSON.parse(data.toString()) as ServerMessage;
    if (message.type !== 'job') return;
    received += 1;
    for (const waiter of waiters.filter((w) => w.count <= received)) waiter.resolve();
  });
  const opened = new Promise<void>((resolve, reject) => {
    socket.once('open', () => {
      socket.send(JSON.stringify({ type: 'subscribe', id: jobId }));
      resolve();
    });
    socket.once('error', reject);
  });
  return {
    socket,
    opened,
    received: (count: number) =>
      received >= count
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiters.push({ count, resolve })),
  };
}

/** API process memory with 1,000 WebSocket subscriptions open (one socket each) and an event through each. */
export const footprint: Scenario = {
  name: 'footprint',
  title: 'footprint',
  conditions: () =>
    'a fresh API process per run, built as the Docker image runs it (`node dist/api/main.js`, compiled by ' +
    '`tsc -p tsconfig.build.json`); `tsx_` figures: the same through tsx, as `npm run api` runs it; ' +
    `${SUBSCRIPTIONS} sockets, each subscribed to its own unfinished job and sent its catch-up, then one live ` +
    'event per job; RSS of the API process from /proc, the highest of the readings taken with them open',
  targets: [
    { figure: 'rss_mb', label: `≤ 200 MB RSS with ${SUBSCRIPTIONS} subscriptions`, op: '<=', value: 200 },
  ],
  async run(settings: RunSettings) {
    const ctx = await benchContext(QUEUE_ONLY_ENV);
    try {
      const setupApi = await spawnApiProcess(ctx);
      const ids = (
        await submitMany({ url: setupApi.url, apiKey: ctx.apiKey }, SUBSCRIPTIONS, 20, (i) =>
          openaiBody(`footprint ${i}`),
        )
      ).map((s) => s.id);
      await setupApi.stop();
      const built = await buildForProduction();
      let seen = 1;
      return await repeat(settings, async () => {
        const production = await measure(['--enable-source-maps', built], '');
        const throughTsx = await measure(undefined, 'tsx_');
        return { ...production, ...throughTsx };
      });

      async function measure(entry: string[] | undefined, prefix: string) {
        const api = await spawnApiProcess(ctx, {}, entry);
        const pid = api.child.pid!;
        const target = { url: api.url, apiKey: ctx.apiKey };
        await sleep(1000);
        const baseline = await rssBytes(pid);
        const subscribers = ids.map((id) => subscriber(target, id));
        await allWithin(
          subscribers.map((s) => s.opened.then(() => s.received(seen))),
          60_000,
          'subscriptions',
        );
        await sleep(1000);
        const open = await rssBytes(pid);
        // One live event through every subscription: the running transition a worker would write.
        for (const id of ids) await startProviderCall(ctx.database.db, id, true);
        seen += 1;
        await allWithin(
          subscribers.map((s) => s.received(seen)),
          60_000,
          'live events',
        );
        await sleep(1000);
        const afterEvents = await rssBytes(pid);
        for (const s of subscribers) s.socket.terminate();
        await api.stop();
        return {
          [`${prefix}rss_mb`]: Math.max(open, afterEvents) / MB,
          [`${prefix}baseline_rss_mb`]: baseline / MB,
          [`${prefix}kb_per_subscription`]: (Math.max(open, afterEvents) - baseline) / 1024 / SUBSCRIPTIONS,
        };
      }
    } finally {
      await ctx.cleanup();
    }
  },
};
