import { z } from 'zod';
import { idempotencyKeySchema } from '../generation-request.js';
import { listQuerySchema } from '../list-query.js';
import { MAX_WAIT_SECONDS } from '../prefer-wait.js';
import type { Tag } from './description.js';
import { bare, errors, header, jobId, json, queryParameters, ref, unauthorized } from './schema-parts.js';

const tags: Tag[] = ['generations'];

function submitOperation() {
  const submitHeaders = {
    Location: header('The job'),
    'Idempotent-Replayed': header('`true` when this key already had a job'),
    'Preference-Applied': header('`wait=N` when `Prefer: wait` was honoured, with the N applied'),
  };
  return {
    operationId: 'submitGeneration',
    summary: 'Submit a generation; retries with the same Idempotency-Key land on the same job',
    tags,
    parameters: [
      {
        name: 'Idempotency-Key',
        in: 'header',
        required: true,
        schema: bare(z.toJSONSchema(idempotencyKeySchema)),
      },
      {
        name: 'Prefer',
        in: 'header',
        required: false,
        description:
          `\`wait=N\`: hold the answer up to N seconds (a larger N is taken as ${MAX_WAIT_SECONDS}) for the ` +
          'job to end; ended in time, the answer is 200 and the job, otherwise the usual 202. A value that ' +
          'is not whole seconds is ignored',
        schema: { type: 'string' },
      },
    ],
    requestBody: {
      required: true,
      content: { 'application/json': { schema: { $ref: ref('GenerationRequest') } } },
    },
    responses: {
      200: json('With `Prefer: wait`: the job, which ended within the wait', 'Job', submitHeaders),
      202: json('Accepted, or the existing job of this key', 'Submitted', submitHeaders),
      ...unauthorized,
      ...errors({
        invalid_request: '',
        malformed_json: '',
        missing_idempotency_key: '',
        invalid_idempotency_key: '',
        unknown_provider: '',
        unknown_model: '',
        unsupported_size: '',
        bad_request: '',
        insufficient_credits: ' (details `{ cost, balance }`); no job is created',
        body_too_large: '',
        unsupported_media_type: '',
        idempotency_key_reused: ' with a different body',
        rate_limited: ': too many submissions for this API key',
      }),
    },
  };
}

function listOperation() {
  return {
    operationId: 'listGenerations',
    summary: "The caller's jobs, newest first, keyset-paginated",
    tags,
    parameters: queryParameters(listQuerySchema),
    responses: {
      200: json('One page', 'JobPage'),
      ...unauthorized,
      ...errors({ invalid_request: '', invalid_cursor: ': not a `nextCursor` this caller was given' }),
    },
  };
}

/** Submitting, listing, reading and canceling jobs. */
export function generationPaths() {
  return {
    '/v1/generations': { post: submitOperation(), get: listOperation() },
    '/v1/generations/{id}': {
      get: {
        operationId: 'getGeneration',
        summary: 'The job: status, progress, attempts, failure, result',
        tags,
        parameters: [jobId],
        responses: { 200: json('The job', 'Job'), ...unauthorized, ...errors({ not_found: '' }) },
      },
    },
    '/v1/generations/{id}/content': {
      get: {
        operationId: 'getGenerationContent',
        summary: "The job's result: the PNG of an image job, the text of a text job",
        tags,
        parameters: [jobId],
        responses: {
          200: {
            description: 'The result',
            content: { 'image/png': {}, 'text/plain': { schema: { type: 'string' } } },
            headers: { ETag: header('Its SHA-256') },
          },
          ...unauthorized,
          ...errors({
            not_found: '',
            result_not_ready: ': the job has not succeeded',
            result_expired: ': removed after its retention period',
          }),
        },
      },
    },
    '/v1/generations/{id}/text': {
      get: {
        operationId: 'getGenerationText',
        summary: "A text job's output so far: the polling fallback for its streamed tokens",
        tags,
        parameters: [jobId],
        responses: {
          200: json('The text so far', 'StreamedText'),
          ...unauthorized,
          ...errors({
            not_found: '',
            not_a_text_job: '',
            result_expired: ': removed after its retention period',
          }),
        },
      },
    },
    '/v1/generations/{id}/deadline': {
      post: {
        operationId: 'extendGenerationDeadline',
        summary: "Move a job's start or finish deadline later, counted from submission as at submit",
        tags,
        parameters: [jobId],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: { $ref: ref('DeadlineExtension') } } },
        },
        responses: {
          200: json("The job's deadlines as its workflow now holds them", 'DeadlineExtended'),
          ...unauthorized,
          ...errors({
            invalid_request: '',
            malformed_json: '',
            bad_request: '',
            body_too_large: '',
            unsupported_media_type: '',
            not_found: '',
            job_finished: ': the job has already ended',
            deadline_shortened: ': a deadline may only move later',
            no_such_deadline: ': the job was submitted without that deadline',
          }),
        },
      },
    },
    '/v1/generations/{id}/cancel': {
      post: {
        operationId: 'cancelGeneration',
        summary: 'Cancel a job; it then ends `canceled`',
        tags,
        parameters: [jobId],
        responses: {
          202: json('Canceling', 'Canceling'),
          ...unauthorized,
          ...errors({ not_found: '', job_finished: ': the job has already ended' }),
        },
      },
    },
  };
}
