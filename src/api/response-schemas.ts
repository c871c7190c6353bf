import { z } from 'zod';
import type { countUnfinishedJobs } from '../db/job-repository.js';
import type { WebhookDelivery } from '../db/webhook-repository.js';
import type { WebhookSecret } from '../db/webhook-secret-repository.js';
import type { StreamedText, TextUpdate } from '../events/text-stream.js';
import {
  CACHE_OUTCOMES,
  SERVICE_TIERS,
  IMAGE_SIZES,
  JOB_FAILURE_CODES,
  JOB_KINDS,
  JobStatus,
  SwitchReason,
  WAIT_REASONS,
  type Job,
  type JobDeadline,
  type JobWaiting,
  type ServedBy,
} from '../jobs/job.js';
import type { JobEventType } from '../events/job-event.js';
import { deadlineSchema } from './generation-request.js';
import { API_ERROR_CODES } from './api-error-codes.js';
import type { ApiError } from './api-error.js';
import type { ProviderList } from './providers-route.js';
import type { JobPage } from '../use-cases/list-generations.js';
import type { QueueEstimate } from '../use-cases/queue-estimate.js';

/*
 * What the API answers, as zod schemas for the OpenAPI document. Each is checked against the type the
 * route builds its body from, so a field added to, removed from or retyped in that type fails to compile
 * here; `test/openapi.test.ts` checks the live bodies against them.
 */

const count = z.int().nonnegative();
const timestamp = z.iso.datetime();

export const jobWaitingSchema = z
  .object({
    reason: z
      .enum(WAIT_REASONS)
      .describe(
        '`admission`: all of the user’s running slots are taken; `provider_slot`: the provider’s call slots are full or its pacing has the next turn; `rate_limited`: the provider paused calls after a 429; `circuit_open`: the provider failed repeatedly and cools down; `backoff`: after a failed call, before the next; `provider_queue`: the provider took the call into its own queue and has not started it; `identical_job`: an identical job’s call serves this one (the result cache); `provider_batch`: the job is a line in a provider batch, pooled or sent (the batch tier)',
      ),
    since: timestamp,
    until: timestamp.nullable().describe('When the job looks again at the latest; null when unknown'),
    attempt: z.int().positive().describe('The provider call the job waits to make'),
    maxCalls: z.int().positive().describe('The most calls its retry policy allows'),
    position: count.optional().describe("`provider_queue` only: requests ahead in the provider's own queue"),
  })
  .describe('Why a job waits') satisfies z.ZodType<JobWaiting>;

export const servedBySchema = z
  .object({
    provider: z.string(),
    model: z.string(),
    size: z.enum(IMAGE_SIZES).nullable().describe('The size asked of this provider; null for text jobs'),
    entry: count.describe('0: the provider submitted for; 1, 2, …: its fallbacks, in order'),
    switched: z
      .object({
        from: z.object({ provider: z.string(), model: z.string() }),
        reason: z
          .enum(SwitchReason)
          .describe(
            '`circuit_open`: the provider failed repeatedly; `rate_limited`: its pause outlasts what the job may wait; `provider_unavailable`: calls failed in a row; `authentication`: it refused the credentials; `start_deadline`: its queue cannot start the job in time',
          ),
      })
      .nullable()
      .describe('How the job came to this entry; null on the one submitted for'),
  })
  .describe(
    'The provider the job calls now, or last called (the one that made the result, once succeeded)',
  ) satisfies z.ZodType<ServedBy>;

/** Every type of numbered job event, as events and webhook deliveries name them. */
export const JOB_EVENT_TYPES = [
  'status',
  'progress',
  'waiting',
  'provider_switched',
  'tier_changed',
] as const satisfies readonly JobEventType[];

export const jobSchema = z
  .object({
    id: z.string(),
    status: z.enum(JobStatus),
    kind: z.enum(JOB_KINDS),
    provider: z.string(),
    model: z.string(),
    size: z.enum(IMAGE_SIZES).nullable().describe('Null for text jobs'),
    promptSha256: z.string().regex(/^[0-9a-f]{64}$/),
    progress: z.number().min(0).max(100).describe('Percent of the provider call done'),
    attempts: count.describe('Provider calls made so far'),
    version: z.int().positive().describe('Grows by one with every change to the job'),
    createdAt: timestamp,
    startedAt: timestamp.nullable(),
    completedAt: timestamp.nullable(),
    failure: z.object({ code: z.enum(JOB_FAILURE_CODES), message: z.string() }).nullable(),
    result: z
      .object({ contentType: z.string(), byteSize: count, sha256: z.string().regex(/^[0-9a-f]{64}$/) })
      .nullable(),
    purgedAt: timestamp.nullable().describe('When retention removed the result'),
    waiting: jobWaitingSchema.nullable().describe('Null while the job is worked on, and once it ended'),
    servedBy: servedBySchema,
    cacheOutcome: z
      .enum(CACHE_OUTCOMES)
      .nullable()
      .describe(
        "`joined`: an identical job's provider call served this one (set while it waits on that call); `reused`: an identical job's stored result served it at once; null: it called a provider itself",
      ),
    usage: z
      .object({ inputTokens: count, outputTokens: count, estimated: z.boolean() })
      .nullable()
      .describe(
        "A text job's tokens once it has a result (`estimated`: bounds from above, the provider's count being lost); null for images",
      ),
    tier: z
      .enum(SERVICE_TIERS)
      .describe(
        'The tier serving the job: as requested, until a batch job the batch tier could not serve in time moved to `standard` (its `onBatchMiss`)',
      ),
    credits: z
      .object({ reserved: count, settled: count.nullable(), refunded: count.nullable() })
      .optional()
      .describe(
        'From the ledger, on GET and in the listing (not in events): what the latest run reserved, and once it ended, what it was charged and what came back',
      ),
    queue: z
      .object({ queuePosition: count, estimatedWaitSeconds: z.number().nonnegative() })
      .optional()
      .describe(
        "On the job's GET, while it waits in a queue (Kiln's, or the provider's own): where it stands now, as the 202 counted it",
      ),
  })
  .describe('A job as the API shows it; never carries the prompt, only its hash') satisfies z.ZodType<Job>;

export const jobPageSchema = z.object({
  data: z.array(jobSchema),
  nextCursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last one'),
}) satisfies z.ZodType<JobPage>;

const links = z.object({ self: z.string(), content: z.string(), events: z.string(), stream: z.string() });

/** The `202` of `POST /v1/generations`. */
export const submittedSchema = z.object({
  id: z.string(),
  status: z.enum(JobStatus),
  queuePosition: count.describe(
    'Jobs expected to start before this one, counted over at most the 1,000 queued jobs nearest ahead',
  ),
  estimatedWaitSeconds: z.number().nonnegative(),
  links,
}) satisfies z.ZodType<Pick<Job, 'id' | 'status'> & QueueEstimate>;

/** The `202` of `POST /v1/generations/{id}/cancel`. */
export const cancelingSchema = z.object({
  id: z.string(),
  status: z.enum(JobStatus),
  links,
}) satisfies z.ZodType<Pick<Job, 'id' | 'status'>>;

/** The `200` of an extension: the job's deadlines as its workflow now holds them. */
export const deadlineExtendedSchema = z.object({
  id: z.string(),
  deadline: deadlineSchema,
}) satisfies z.ZodType<{ id: string; deadline: JobDeadline }>;

export const meSchema = z.object({
  id: z.string(),
  name: z.string(),
  plan: z.string(),
  credits: z.object({
    balance: count,
    reserved: count.describe('Held by jobs that have not ended yet'),
    settled: count.describe('Charged for jobs that ended'),
    refunded: count.describe('Given back of what jobs that ended reserved'),
  }),
  jobs: z.object({
    queued: count,
    running: count.describe('Jobs running or storing their result'),
  }) satisfies z.ZodType<Awaited<ReturnType<typeof countUnfinishedJobs>>>,
});

export const providerListSchema = z
  .object({
    data: z.array(
      z.object({
        name: z.string(),
        kind: z.enum(JOB_KINDS),
        isDefault: z.boolean().describe('A submission of this kind naming no provider goes to it'),
        defaultModel: z.string().describe('What a submission to it naming no model gets'),
        models: z.array(
          z.object({
            name: z.string(),
            prices: z
              .array(
                z.object({
                  size: z.enum(IMAGE_SIZES).nullable().describe('Null for text models'),
                  credits: count.describe('What one job costs, reserved at submission'),
                }),
              )
              .describe(
                'Each size an image model makes, or the one price of a text model priced per job (none for one priced by tokens)',
              ),
            tokenPrice: z
              .object({
                since: z.string().describe('The day (UTC) these prices apply from'),
                inputPerMillion: count,
                outputPerMillion: count,
                batch: z
                  .object({ inputPerMillion: count, outputPerMillion: count })
                  .optional()
                  .describe(
                    'The batch tier’s prices, where the model is offered in batches (`tier: "batch"`)',
                  ),
              })
              .nullable()
              .describe(
                "A text model priced by the tokens a job uses, in credits per million tokens: a job reserves its worst case (its prompt's UTF-8 bytes + 16, and maxTokens) and is charged what it used; null: priced per job",
              ),
          }),
        ),
      }),
    ),
  })
  .describe(
    'The providers this deployment calls, by kind, with their models and prices',
  ) satisfies z.ZodType<ProviderList>;

export const streamedTextSchema = z
  .object({
    attempt: count.describe('The provider attempt that wrote it; 0 before the first'),
    text: z.string(),
  })
  .describe("A text job's output as streamed so far by its latest attempt") satisfies z.ZodType<StreamedText>;

/** `data` of a text job's `text` event: `delta` goes at `offset` of that attempt's text. */
export const textDeltaSchema = z.object({
  attempt: count.describe('The provider attempt writing the text'),
  offset: count.describe("In UTF-16 units of the attempt's text; 0 for the text so far after (re)connecting"),
  delta: z.string(),
}) satisfies z.ZodType<Omit<Extract<TextUpdate, { type: 'text' }>, 'type'>>;

/** `data` of a text job's `reset` event: a retried attempt writes the text again from the start. */
export const textResetSchema = z.object({
  attempt: count.describe('The attempt starting from empty'),
}) satisfies z.ZodType<Omit<Extract<TextUpdate, { type: 'reset' }>, 'type'>>;

export const errorSchema = z.object({
  error: z.object({ code: z.enum(API_ERROR_CODES), message: z.string(), details: z.unknown().optional() }),
}) satisfies z.ZodType<ReturnType<ApiError['toJSON']>>;

export const healthSchema = z.object({ ok: z.literal(true) });

const webhookAttemptSchema = z.object({
  number: z.int().positive().describe('1, 2, 3… per delivery, over all runs'),
  run: z.int().positive(),
  startedAt: timestamp,
  durationMs: count,
  statusCode: z.int().nullable().describe("The receiver's status; null when it gave none"),
  error: z.string().nullable().describe('Why the attempt failed; null when it succeeded'),
});

export const webhookDeliverySchema = z
  .object({
    id: z.string().describe('The `webhook-id` header of every attempt'),
    seq: z.int().positive().describe("The event's seq"),
    event: z.enum(JOB_EVENT_TYPES),
    url: z.string(),
    status: z.enum(['pending', 'succeeded', 'failed']).describe('`failed`: gave up; may be redelivered'),
    run: z.int().positive().describe('1, then one more per redelivery'),
    lastError: z.string().nullable(),
    createdAt: timestamp,
    completedAt: timestamp.nullable(),
    attempts: z.array(webhookAttemptSchema),
  })
  .describe("One of a job's events sent to its webhook") satisfies z.ZodType<WebhookDelivery>;

export const webhookDeliveryListSchema = z.object({ data: z.array(webhookDeliverySchema) });

export const webhookSecretSchema = z
  .object({
    secret: z
      .string()
      .regex(/^whsec_/)
      .describe('Verify deliveries with it'),
    createdAt: timestamp,
    previous: z
      .object({ expiresAt: timestamp.describe('When the replaced secret stops signing') })
      .optional()
      .describe('While a rotation overlaps: the replaced secret still signs too; absent otherwise'),
  })
  .describe("The caller's webhook signing secret") satisfies z.ZodType<WebhookSecret>;
