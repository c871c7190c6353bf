import { z } from 'zod';
import type { StuckJobList } from './admin-routes.js';
import type { ProviderState } from '../use-cases/provider-states.js';
import { jobSchema } from './response-schemas.js';

/*
 * What the operator API answers, for the OpenAPI document; each is checked against the type its route
 * builds the body from, as in response-schemas.ts.
 */

const timestamp = z.iso.datetime();
const count = z.int().nonnegative();

export const stuckJobListSchema = z.object({
  data: z.array(
    z.object({
      job: jobSchema,
      userId: z.string(),
      workflowId: z.string().describe("The job's Temporal workflow id (the job id)"),
      idleSeconds: count.describe('Time since the job last changed (status or progress)'),
    }),
  ),
  hasMore: z.boolean().describe('More jobs match than `limit`'),
}) satisfies z.ZodType<StuckJobList>;

const providerStateSchema = z
  .object({
    provider: z.string(),
    breaker: z
      .object({
        state: z.enum(['closed', 'open', 'half_open']),
        consecutiveFailures: count,
        openUntil: timestamp.nullable().describe('When an open circuit lets its probe go'),
        probeStartedAt: timestamp.nullable(),
      })
      .describe('Shared by every worker'),
    limits: z.array(
      z.object({
        key: z.string().describe('`provider` or `provider:model`: what PROVIDER_LIMITS configures'),
        rpm: z.number().positive(),
        dispatchesPerSecond: z.number().positive().describe('What the task queue dispatches, fleet-wide'),
        slots: z.object({ inUse: count, capacity: z.int().positive() }).describe('Calls in flight'),
        pausedUntil: timestamp.nullable().describe('Set by a 429 or an exhausted quota'),
      }),
    ),
  })
  .describe("A provider's breaker, and its rate and slot use") satisfies z.ZodType<ProviderState>;

export const providerStateListSchema = z.object({ data: z.array(providerStateSchema) });
