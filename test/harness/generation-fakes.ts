import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type {
  AdmissionActivities,
  JobTableActivities,
  ProviderActivities,
  ProviderCircuitActivities,
  ResultStorageActivities,
} from '../../src/activities/index.js';
import { toTemporalFailure } from '../../src/activities/temporal-failure.js';
import {
  FailureCode,
  JobStatus,
  type JobEnding,
  type TokenUsage,
  type WaitReason,
} from '../../src/jobs/job.js';
import { ProviderError } from '../../src/providers/provider-error.js';

/**
 * What `runGeneration` runs as local activities, in the worker that runs its workflow tasks: the groups
 * its proxies are typed to, so that a changed or added activity breaks the fakes at compile time.
 */
export type LocalActivities = AdmissionActivities &
  JobTableActivities &
  ProviderCircuitActivities &
  ResultStorageActivities;

/** What it runs on the provider's own task queue. */
export type { ProviderActivities };

type TerminalWrite = 'storeResultAndSucceed' | 'markJobFailed' | 'markJobExpired' | 'markJobCanceled';

/** One provider call's answer, as the real `callProvider` gives it. */
export type Answer =
  | { kind: 'generated'; usage?: TokenUsage }
  | { kind: 'waiting'; retryInMs: number; reason?: WaitReason }
  | {
      kind: 'failure';
      code: FailureCode;
      retryable: boolean;
      retryAfterMs?: number;
      probe: boolean;
      taskLivesOn?: boolean;
    }
  /** An ApplicationFailure whose type is no FailureCode: what a bug, not a provider, throws. */
  | { kind: 'unclassified'; type: string }
  /** Heartbeats until Temporal cancels the call, then ends as that cancellation, as the real one does. */
  | { kind: 'hang' };

/** The codes the adapters classify as permanent (ProviderError's `retryable: false`). */
const PERMANENT: ReadonlySet<FailureCode> = new Set([
  FailureCode.invalidRequest,
  FailureCode.contentPolicy,
  FailureCode.authentication,
  FailureCode.internal,
]);

export const generated: Answer = { kind: 'generated' };
export const hang: Answer = { kind: 'hang' };
/** A text call's answer, with the tokens its provider reported. */
export const generatedText = (usage: TokenUsage): Answer => ({ kind: 'generated', usage });
export const waiting = (retryInMs: number, reason?: WaitReason): Answer => ({
  kind: 'waiting',
  retryInMs,
  reason,
});
export const unclassified = (type: string): Answer => ({ kind: 'unclassified', type });
export function failure(
  code: FailureCode,
  options: { retryAfterMs?: number; probe?: boolean; taskLivesOn?: boolean } = {},
): Answer {
  return { kind: 'failure', code, retryable: !PERMANENT.has(code), probe: false, ...options };
}

/** How the fakes behave in one test; whatever is left unsaid is the happy path. */
export interface Script {
  /** The provider's answers, call by call; once spent, every call generates. */
  answers?: Answer[];
  /** admitWaitingJobs' answers, call by call; once spent, the job is admitted. */
  admissions?: boolean[];
  /** How long each admitWaitingJobs takes. */
  admitDelayMs?: number;
  /** Providers whose circuit the workflow finds open when it asks before a call. */
  openCircuits?: string[];
  /** What a terminal write says the row ended as, when not what it was asked to write. */
  endings?: Partial<Record<TerminalWrite, JobEnding>>;
}

/** A fake activity call, or the provider call seeing its cancellation. */
export type Event = keyof LocalActivities | keyof ProviderActivities | 'callProvider canceled';

export interface Recorded {
  event: Event;
  arg: unknown;
  at: number;
}

export interface Fakes {
  local: LocalActivities;
  provider: ProviderActivities;
  recorded: Recorded[];
  /** Resolves once `event` has been recorded. */
  seen(event: Event): Promise<void>;
}

async function hangUntilCanceled(): Promise<never> {
  const context = Context.current();
  const beat = setInterval(() => context.heartbeat(), 100);
  try {
    return await context.cancelled;
  } finally {
    clearInterval(beat);
  }
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Typed against the real activities: a changed signature breaks this file at compile time. */
export function createFakes(script: Script): Fakes {
  const recorded: Recorded[] = [];
  const waiters: { event: Event; resolve: () => void }[] = [];
  const record = (event: Event, arg: unknown) => {
    recorded.push({ event, arg, at: Date.now() });
    for (const waiter of waiters.filter((w) => w.event === event)) waiter.resolve();
  };
  const answers = [...(script.answers ?? [])];
  const admissions = [...(script.admissions ?? [])];
  const ending = (write: TerminalWrite, status: JobEnding['status'], failure: JobEnding['failure'] = null) =>
    script.endings?.[write] ?? { status, failure };

  async function answer(next: Answer, jobId: string) {
    switch (next.kind) {
      case 'generated':
        return {
          kind: 'generated',
          output: { key: `results/${jobId}`, contentType: 'image/png', byteSize: 3, sha256: 'ab'.repeat(32) },
          ...(next.usage && { usage: { ...next.usage, estimated: false } }),
        } as const;
      case 'waiting':
        return { kind: 'waiting', retryInMs: next.retryInMs, reason: next.reason } as const;
      case 'failure': {
        const { code, retryable, retryAfterMs, taskLivesOn } = next;
        const error = new ProviderError(
          code,
          `fake ${code}`,
          retryable,
          retryAfterMs,
          undefined,
          taskLivesOn,
        );
        throw toTemporalFailure(error, { probe: next.probe });
      }
      case 'unclassified':
        throw ApplicationFailure.nonRetryable(`fake ${next.type}`, next.type);
      case 'hang':
        try {
          return await hangUntilCanceled();
        } catch (error) {
          record('callProvider canceled', jobId);
          throw error;
        }
    }
  }

  // Answered at once: the writes' own timing is not what these tests are about.
  const local: LocalActivities = {
    async admitWaitingJobs(jobId) {
      record('admitWaitingJobs', jobId);
      await delay(script.admitDelayMs ?? 0);
      return admissions.shift() ?? true;
    },
    storeResultAndSucceed(input) {
      record('storeResultAndSucceed', input);
      return Promise.resolve(ending('storeResultAndSucceed', JobStatus.succeeded));
    },
    markJobFailed(input) {
      record('markJobFailed', input);
      const { code, message } = input;
      return Promise.resolve(ending('markJobFailed', JobStatus.failed, { code, message }));
    },
    markJobExpired(jobId) {
      record('markJobExpired', jobId);
      return Promise.resolve(ending('markJobExpired', JobStatus.expired));
    },
    markJobCanceled(jobId) {
      record('markJobCanceled', jobId);
      return Promise.resolve(ending('markJobCanceled', JobStatus.canceled));
    },
    discardOutputs(jobId) {
      record('discardOutputs', jobId);
      return Promise.resolve();
    },
    recordJobWaiting(input) {
      record('recordJobWaiting', input);
      return Promise.resolve();
    },
    recordProviderSwitch(input) {
      record('recordProviderSwitch', input);
      return Promise.resolve();
    },
    providerCircuitOpenForMs(provider) {
      record('providerCircuitOpenForMs', provider);
      return Promise.resolve(script.openCircuits?.includes(provider) ? 30_000 : null);
    },
  };
  const provider: ProviderActivities = {
    async callProvider(input) {
      record('callProvider', input);
      return answer(answers.shift() ?? generated, input.jobId);
    },
  };
  return {
    local,
    provider,
    recorded,
    seen: (event) =>
      recorded.some((r) => r.event === event)
        ? Promise.resolve()
        : new Promise((resolve) => waiters.push({ event, resolve })),
  };
}
