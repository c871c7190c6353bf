import { ApplicationFailure, Context } from '@temporalio/activity';
import { updateRunningJob } from '../db/job-repository.js';
import { FailureCode, type GenerationRequest } from '../jobs/job.js';
import type { ActivityDependencies } from './dependencies.js';
import { toTemporalFailure } from './temporal-failure.js';

export interface CallProviderInput {
  jobId: string;
  request: GenerationRequest;
  seed: number;
}

export interface CallProviderResult {
  /** Where the raw output waits for `storeResult`; payloads stay small, images never enter history. */
  stagingKey: string;
  contentType: string;
}

/** Heartbeat at least this often during a silent provider call; the SDK throttles the actual sends. */
const HEARTBEAT_INTERVAL_MS = 1000;

export function stagingKeyFor(jobId: string): string {
  return `staging/${jobId}`;
}

export function createProviderActivities({ db, store, providers, logger }: ActivityDependencies) {
  /** Keeps job-table progress writes in order without blocking the provider call on them. */
  function progressWriter(jobId: string) {
    let pending = Promise.resolve();
    let last = -1;
    return (percent: number) => {
      const progress = Math.max(0, Math.min(99, Math.floor(percent)));
      if (progress <= last) return;
      last = progress;
      Context.current().heartbeat({ progress });
      pending = pending
        .then(() => updateRunningJob(db, jobId, { progress }))
        .then(
          () => undefined,
          (error: unknown) => logger.warn({ jobId, err: error }, 'progress write failed'),
        );
    };
  }

  return {
    /** The paid call. Heartbeats while in flight so a dead worker is noticed within the heartbeat timeout. */
    async callProvider({ jobId, request, seed }: CallProviderInput): Promise<CallProviderResult> {
      const context = Context.current();
      const provider = providers.get(request.provider);
      if (!provider) {
        throw ApplicationFailure.nonRetryable(
          `unknown provider ${request.provider}`,
          FailureCode.invalidRequest,
        );
      }
      await updateRunningJob(db, jobId, { attempts: context.info.attempt, progress: 0 });
      const log = { jobId, provider: provider.name, attempt: context.info.attempt };
      logger.info(log, 'provider call started');
      const beat = setInterval(() => context.heartbeat(), HEARTBEAT_INTERVAL_MS);
      try {
        const image = await provider.generateImage(
          { prompt: request.prompt, model: request.model, size: request.size, seed },
          { signal: context.cancellationSignal, onProgress: progressWriter(jobId) },
        );
        const stagingKey = stagingKeyFor(jobId);
        await store.put(stagingKey, image.bytes, image.contentType);
        logger.info({ ...log, bytes: image.bytes.byteLength }, 'provider call finished');
        return { stagingKey, contentType: image.contentType };
      } catch (error) {
        logger.warn({ ...log, err: error }, 'provider call failed');
        throw toTemporalFailure(error);
      } finally {
        clearInterval(beat);
      }
    },
  };
}
