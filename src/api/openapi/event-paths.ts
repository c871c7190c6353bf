import type { JobEventType } from '../../events/job-event.js';
import type { TextUpdate } from '../../events/text-stream.js';
import { MAX_SEQ_DIGITS } from '../job-events-sse.js';
import { JOB_EVENT_TYPES } from '../response-schemas.js';
import type { Tag } from './description.js';
import { errors, jobId, ref, unauthorized } from './schema-parts.js';

const tags: Tag[] = ['events'];

/**
 * One Server-Sent Event as a parser reads it (`event`, `data`, `id`), its `data` JSON of the schema
 * named. OpenAPI 3.1 has no way to describe a stream's items; like Schemathesis, this document takes the
 * `text/event-stream` schema to describe each event.
 */
function serverSentEvent(
  names: (JobEventType | TextUpdate['type'])[],
  dataSchema: string,
  id: Record<string, unknown>,
  numbered: boolean,
) {
  return {
    type: 'object',
    properties: {
      event: { enum: names },
      data: {
        type: 'string',
        contentMediaType: 'application/json',
        contentSchema: { $ref: ref(dataSchema) },
      },
      id,
    },
    required: numbered ? ['event', 'data', 'id'] : ['event', 'data'],
    additionalProperties: false,
  };
}

const jobEvent = serverSentEvent(
  [...JOB_EVENT_TYPES],
  'Job',
  {
    type: 'string',
    pattern: '^[1-9][0-9]*$',
    description: "The event's seq: what `Last-Event-ID` resumes after",
  },
  true,
);

/** Text events carry no `id:`; a parser keeps the last numbered event's, which is what resumes. */
const unnumbered = {
  type: 'string',
  description: 'None sent: the last numbered event id, kept by the parser',
};

export function eventPaths() {
  const seq = { type: 'integer', minimum: 0, maximum: 10 ** MAX_SEQ_DIGITS - 1 };
  return {
    '/v1/generations/{id}/events': {
      get: {
        operationId: 'streamGenerationEvents',
        summary: "The job's events as Server-Sent Events",
        description:
          'Each event: `id:` its seq, `event:` `status` or `progress`, `data:` the Job after the change. ' +
          'Starts after `Last-Event-ID` (or `since`); ends after the terminal event, or when the API key ' +
          'is revoked (a reconnect is then answered 401). A text job also gets ' +
          '`event: text` (`data: { attempt, offset, delta }`) and `event: reset` (`data: { attempt }`) ' +
          'without an id, the same messages the WebSocket sends.',
        tags,
        parameters: [
          jobId,
          {
            name: 'Last-Event-ID',
            in: 'header',
            description: 'What EventSource sends on reconnecting; takes the place of `since`',
            schema: { type: 'string', pattern: `^[0-9]{1,${MAX_SEQ_DIGITS}}$` },
          },
          { name: 'since', in: 'query', description: 'Events after this seq', schema: seq },
        ],
        responses: {
          200: {
            description: 'The events, each one of these',
            content: {
              'text/event-stream': {
                schema: {
                  oneOf: [
                    jobEvent,
                    serverSentEvent(['text'], 'TextDelta', unnumbered, false),
                    serverSentEvent(['reset'], 'TextReset', unnumbered, false),
                  ],
                },
              },
            },
          },
          204: { description: 'The job has ended and has no event after Last-Event-ID: stop reconnecting' },
          ...unauthorized,
          ...errors({
            invalid_request: ': a bad Last-Event-ID or since',
            not_found: '',
            too_many_streams: ': the key holds MAX_STREAMS_PER_KEY sockets and streams on this API process',
          }),
        },
      },
    },
  };
}
