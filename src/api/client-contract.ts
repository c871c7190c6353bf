import type { z } from 'zod';
import type * as client from '../client/index.js';
import type { JobEvent } from '../events/job-event.js';
import type { StreamedText, TextUpdate } from '../events/text-stream.js';
import type { deadlineExtensionSchema, generationBodySchema } from './generation-request.js';
import type { listQuerySchema } from './list-query.js';
import type {
  cancelingSchema,
  deadlineExtendedSchema,
  errorSchema,
  jobPageSchema,
  jobSchema,
  meSchema,
  providerListSchema,
  submittedSchema,
} from './response-schemas.js';

/*
 * The client package declares the API's shapes itself, since it ships without the server and without
 * zod. These types hold it to the schemas the server validates with and answers in: when either side
 * changes a field, this file stops compiling. Nothing imports it; `npm run typecheck` checks it.
 */

/** Each may stand for the other: same fields, same optionality, same types. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** What the client sends, the server accepts. */
type Accepted<Sent, Schema> = [Sent] extends [Schema] ? true : false;
type Holds<T extends true> = T;

export type ClientContract = [
  Holds<Same<client.Job, z.output<typeof jobSchema>>>,
  Holds<Same<client.JobEvent, JobEvent>>,
  Holds<Same<client.AcceptedJob, z.output<typeof submittedSchema>>>,
  Holds<Same<client.JobPage, z.output<typeof jobPageSchema>>>,
  Holds<Same<client.Canceling, z.output<typeof cancelingSchema>>>,
  Holds<Same<client.DeadlineExtended, z.output<typeof deadlineExtendedSchema>>>,
  Holds<Accepted<client.JobDeadline, z.input<typeof deadlineExtensionSchema>>>,
  Holds<Same<client.Me, z.output<typeof meSchema>>>,
  Holds<Same<client.ProviderList, z.output<typeof providerListSchema>>>,
  Holds<Same<client.StreamedText, StreamedText>>,
  Holds<Same<client.TextUpdate, TextUpdate>>,
  // Requests one way: whatever the client can send, the server's schema takes.
  Holds<Accepted<client.GenerationBody, z.input<typeof generationBodySchema>>>,
  Holds<Accepted<client.ListQuery, Partial<z.input<typeof listQuerySchema>>>>,
  // The client keeps error codes open: a newer server may answer one it does not know.
  Holds<Accepted<z.output<typeof errorSchema>, client.ApiErrorBody>>,
];
