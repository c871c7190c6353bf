import { ADMIN_PATH, stuckQuerySchema } from '../admin-routes.js';
import type { Tag } from './description.js';
import { errors, jobId, json, queryParameters } from './schema-parts.js';

const tags: Tag[] = ['admin'];

/** The operator API: in the document only where it is served, when ADMIN_API_KEY is set. */
export function adminPaths() {
  const admin = { tags, security: [{ adminKey: [] }] };
  const refused = errors({
    unauthorized: ': no admin key, or a wrong one',
    forbidden: ': a user API key, not the admin key',
  });
  return {
    [`${ADMIN_PATH}/jobs/stuck`]: {
      get: {
        operationId: 'adminListStuckJobs',
        summary: 'Unfinished jobs of every user that have not changed for a while, longest idle first',
        ...admin,
        parameters: queryParameters(stuckQuerySchema),
        responses: {
          200: json('The jobs, at most `limit`', 'StuckJobList'),
          ...refused,
          ...errors({ invalid_request: '' }),
        },
      },
    },
    [`${ADMIN_PATH}/jobs/{id}/retry`]: {
      post: {
        operationId: 'adminRetryJob',
        summary: 'Re-run a failed job under its own id, its history kept and its cost reserved again',
        description:
          'The job goes back to `queued` (a new event: `seq` keeps counting) and a new run of its workflow ' +
          'starts with the input it was submitted with; its deadlines count from the retry.',
        ...admin,
        parameters: [jobId],
        responses: {
          202: json('The job, queued again', 'Job'),
          ...refused,
          ...errors({
            insufficient_credits: ' (details `{ cost, balance }`): the user cannot pay for another run',
            not_found: '',
            job_not_failed: ' (details `{ status }`)',
            run_closing: ': the failed run has not closed yet',
            provider_not_configured: ' (details `{ provider, model }`): not offered here any more',
            history_unavailable: ': Temporal no longer keeps the run',
          }),
        },
      },
    },
    [`${ADMIN_PATH}/jobs/{id}/cancel`]: {
      post: {
        operationId: 'adminCancelJob',
        summary: "Cancel any user's job; it then ends `canceled`",
        ...admin,
        parameters: [jobId],
        responses: {
          202: json('The job, canceling', 'Job'),
          ...refused,
          ...errors({ not_found: '', job_finished: ': the job has already ended' }),
        },
      },
    },
    [`${ADMIN_PATH}/providers`]: {
      get: {
        operationId: 'adminListProviders',
        summary: "Each provider's breaker, and its rate and call slots against their limits",
        ...admin,
        responses: { 200: json('The providers', 'ProviderStateList'), ...refused },
      },
    },
  };
}
