import WebSocket from 'ws';
import type { Random } from './random.js';
import type { ChaosStack, ProcessKind } from './stack.js';

/** What one injected fault did, for the timeline; `killedWorker` marks a fault that may cost a paid call. */
export interface InjectedFault {
  name: string;
  detail: string;
  killedWorker: boolean;
}

/** One kind of fault: how often it is drawn, and how to inject it (resolving once it has been undone). */
export interface Fault {
  name: string;
  weight: number;
  inject(stack: ChaosStack, random: Random): Promise<{ detail: string; killedWorker?: boolean }>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** How the fake provider answers when no fault is on: a second or so per image, tokens 40 ms apart. */
export const PROVIDER_BASELINE = {
  images: { kind: 'ok', delayMs: 800 },
  chat: { kind: 'ok', tokenDelayMs: 40 },
} as const;

function processFault(kind: ProcessKind, signal: NodeJS.Signals, weight: number): Fault {
  return {
    name: `${kind} ${signal}`,
    weight,
    inject: async (stack, random) => {
      const slot = random.int(0, stack.processes[kind].length - 1);
      const downMs = random.int(0, 3000);
      await stack.replace(kind, slot, signal, downMs);
      return { detail: `slot ${slot}, down ${downMs} ms`, killedWorker: kind === 'worker' };
    },
  };
}

/** A window during which the provider answers every request one bad way. */
function providerWindow(name: string, weight: number, during: (stack: ChaosStack) => void): Fault {
  return {
    name,
    weight,
    inject: async (stack, random) => {
      const ms = random.int(1000, 5000);
      during(stack);
      await sleep(ms);
      stack.images.setBehaviour(PROVIDER_BASELINE.images);
      stack.chat.setBehaviour(PROVIDER_BASELINE.chat);
      return { detail: `${ms} ms` };
    },
  };
}

/** Clients watching jobs over the socket vanish without a close frame, as a phone losing signal does. */
async function dropClients(stack: ChaosStack, random: Random): Promise<{ detail: string }> {
  const urls = stack.apiUrls();
  const count = random.int(1, 4);
  const ids = await stack.ctx.database.db
    .selectFrom('jobs')
    .select('id')
    .where('status', 'in', ['queued', 'running', 'storing'])
    .limit(5)
    .execute();
  await Promise.all(
    Array.from({ length: Math.min(count, urls.length * 2) }, async () => {
      const socket = new WebSocket(`${random.pick(urls).replace(/^http/, 'ws')}/v1/stream`, {
        headers: { Authorization: `Bearer ${stack.ctx.apiKey}` },
      });
      socket.on('error', () => undefined);
      await new Promise((resolve) => socket.once('open', resolve).once('error', resolve));
      for (const { id } of ids) socket.send(JSON.stringify({ type: 'subscribe', id }));
      await sleep(random.int(50, 1500));
      socket.terminate();
    }),
  );
  return { detail: `${count} sockets, ${ids.length} jobs each` };
}

/**
 * Every fault the campaign draws from. A new fault is one entry here; the invariants hold over all of
 * them. Durations stay within what the design promises to ride out (a storage stall shorter than the
 * heartbeat timeout, say): a fault past those would be a new promise to test, not a break.
 */
export const FAULTS: readonly Fault[] = [
  processFault('worker', 'SIGKILL', 3),
  processFault('worker', 'SIGTERM', 2),
  processFault('api', 'SIGKILL', 2),
  processFault('api', 'SIGTERM', 1),
  {
    name: 'postgres fast restart',
    weight: 2,
    inject: async (stack) => {
      await stack.postgres.restart('fast');
      return { detail: 'pg_ctl -m fast restart' };
    },
  },
  {
    name: 'postgres crash',
    weight: 1,
    inject: async (stack) => {
      await stack.postgres.restart('immediate');
      return { detail: 'pg_ctl -m immediate restart' };
    },
  },
  {
    name: 'postgres down',
    weight: 2,
    inject: async (stack, random) => {
      const ms = random.int(1000, 6000);
      await stack.postgres.shutdown('fast');
      await sleep(ms);
      await stack.postgres.start();
      return { detail: `down ${ms} ms` };
    },
  },
  {
    name: 'temporal restart',
    weight: 2,
    inject: async (stack, random) => {
      const ms = random.int(500, 8000);
      await stack.restartTemporal(ms);
      return { detail: `down ${ms} ms` };
    },
  },
  providerWindow('provider 5xx', 2, (stack) => {
    stack.images.setBehaviour({ kind: 'server_error', status: 503 });
    stack.chat.setBehaviour({ kind: 'stream_error', afterTokens: 2 });
  }),
  // Long enough to open the breaker: jobs with a fallback move on, the others wait it out.
  providerWindow('provider down', 2, (stack) => {
    stack.images.setBehaviour({ kind: 'server_error', status: 503 });
    stack.chat.setBehaviour({ kind: 'stream_error', afterTokens: 0 });
  }),
  providerWindow('provider slow', 1, (stack) => {
    stack.images.setBehaviour({ kind: 'ok', delayMs: 6000 });
    stack.chat.setBehaviour({ kind: 'ok', tokenDelayMs: 400 });
  }),
  {
    name: 'provider 429s',
    weight: 2,
    inject: (stack, random) => {
      const count = random.int(1, 6);
      stack.images.queueBehaviour({ kind: 'rate_limited', retryAfterSeconds: 1 }, count);
      stack.chat.queueBehaviour({ kind: 'rate_limited', retryAfterSeconds: 1 }, count);
      return Promise.resolve({ detail: `next ${count} requests` });
    },
  },
  {
    name: 'provider resets',
    weight: 1,
    inject: (stack, random) => {
      const count = random.int(1, 3);
      stack.images.queueBehaviour({ kind: 'reset' }, count);
      stack.chat.queueBehaviour({ kind: 'cut', afterTokens: 3 }, count);
      return Promise.resolve({ detail: `next ${count} requests` });
    },
  },
  {
    name: 'provider truncates',
    weight: 1,
    inject: (stack, random) => {
      const count = random.int(1, 3);
      stack.chat.queueBehaviour({ kind: 'ends_early', afterTokens: 3 }, count);
      return Promise.resolve({ detail: `next ${count} text replies end cleanly, cut short` });
    },
  },
  {
    name: 'provider hangs',
    weight: 1,
    inject: (stack, random) => {
      const count = random.int(1, 2);
      stack.images.queueBehaviour({ kind: 'hang' }, count);
      return Promise.resolve({ detail: `next ${count} image requests` });
    },
  },
  {
    name: 'storage stall',
    weight: 2,
    inject: async (stack, random) => {
      const ms = random.int(500, 5000);
      stack.storage.hold();
      await sleep(ms);
      stack.storage.release();
      return { detail: `every PUT held ${ms} ms` };
    },
  },
  { name: 'client drops', weight: 2, inject: dropClients },
];
