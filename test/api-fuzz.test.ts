import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { jobIdFor } from '../src/jobs/job-identity.js';
import { findJob } from '../src/db/job-repository.js';
import { IMAGE_SIZES } from '../src/jobs/job.js';
import { apiFetch, type ApiTarget } from './harness/job-watcher.js';
import { startApi } from './harness/kiln-processes.js';
import { assertErrorShape } from './harness/error-shape.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

/** One generated request: everything a client controls. */
interface FuzzRequest {
  method: string;
  path: string;
  /** Raw bytes of the body, sent as they are; undefined sends none. */
  body?: string;
  contentType?: string;
  contentEncoding?: string;
  idempotencyKey?: string;
  authenticated: boolean;
}

/** Characters fetch accepts in a header value: printable ASCII and Latin-1, tab inside. */
const headerChar = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
  { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }) },
  { weight: 1, arbitrary: fc.constant(0x09) },
);
const headerValue = (maxLength: number) =>
  fc.string({ unit: headerChar.map((code) => String.fromCharCode(code)), maxLength });

/** Mostly well-formed, so that enough requests get past the key to what follows it. */
const idempotencyKey = fc.oneof(
  { weight: 6, arbitrary: fc.uuid() },
  fc.constant(undefined),
  headerValue(40),
  fc.string({ unit: 'grapheme-ascii', minLength: 250, maxLength: 260 }),
);

/** Mostly JSON, for the same reason; then near misses, and anything a header may hold. */
const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'application/json; charset=latin1',
      'application/json; charset=',
      'APPLICATION/JSON',
      'application/jsonp',
      'application/merge-patch+json',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
    ),
  },
  fc.constant(undefined),
  headerValue(40),
);

/** Mostly none: a body-parser refusal early on would hide everything behind it. */
const contentEncoding = fc.oneof(
  { weight: 8, arbitrary: fc.constant(undefined) },
  fc.constantFrom('gzip', 'deflate', 'br', 'identity'),
  headerValue(10),
);

const toJson = (value: unknown) => JSON.stringify(value);

/** A valid body, every optional field included or not. */
const validBody = fc.record(
  {
    kind: fc.constant('image'),
    prompt: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 80 }).filter((p) => p.trim() !== ''),
    provider: fc.constant('local'),
    model: fc.constant('kiln-sketch-1'),
    params: fc.record({ size: fc.constantFrom(...IMAGE_SIZES) }, { requiredKeys: [] }),
    deadline: fc.record(
      {
        startWithinSeconds: fc.integer({ min: 1, max: 3600 }),
        finishWithinSeconds: fc.integer({ min: 1, max: 3600 }),
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: ['kind', 'prompt'] },
);

const anyJson = fc.jsonValue({ maxDepth: 2 });

/** Values each field may be replaced with: wrong types, edges of the limits, names that are not there. */
const FIELD_MUTANTS: Record<string, fc.Arbitrary<unknown>> = {
  kind: fc.oneof(fc.constantFrom('video', 'IMAGE', ''), anyJson),
  prompt: fc.oneof(
    fc.constantFrom('', ' \n\t', '\u0000', '\ud800', 'x'.repeat(4000), 'x'.repeat(4001), ' '.repeat(4001)),
    anyJson,
  ),
  provider: fc.oneof(fc.constantFrom('openai', 'LOCAL', '', '__proto__', 'x'.repeat(65)), anyJson),
  model: fc.oneof(fc.constantFrom('gpt-image-1', 'toString', '__proto__', ''), anyJson),
  params: fc.oneof(fc.record({ size: fc.oneof(fc.constantFrom('0x0', '1024X1024'), anyJson) }), anyJson),
  deadline: fc.oneof(
    fc.record(
      {
        startWithinSeconds: fc.oneof(fc.integer(), fc.double(), anyJson),
        finishWithinSeconds: fc.constantFrom(0, -1, 604_800, 604_801, 1e21, 0.5),
      },
      { requiredKeys: [] },
    ),
    anyJson,
  ),
};

const mutation: fc.Arbitrary<[string, unknown]> = fc.oneof(
  ...Object.entries(FIELD_MUTANTS).map(([field, value]) => value.map((v): [string, unknown] => [field, v])),
  fc.tuple(fc.string({ maxLength: 12 }), anyJson),
  // undefined drops the field from the JSON.
  fc.constantFrom(...Object.keys(FIELD_MUTANTS)).map((field): [string, unknown] => [field, undefined]),
);

/** A valid body with up to two fields replaced, removed or added; many stay valid. */
const nearValidBody = fc
  .tuple(validBody, fc.array(mutation, { maxLength: 2 }))
  .map(([body, mutations]) => toJson({ ...body, ...Object.fromEntries(mutations) }));

/** `POST /v1/generations` with `body`; headers generated unless `headers` fixes them. */
const submission = (
  body: fc.Arbitrary<string>,
  headers: Partial<{ [K in keyof FuzzRequest]: fc.Arbitrary<FuzzRequest[K]> }> = {},
): fc.Arbitrary<FuzzRequest> =>
  fc.record({
    method: fc.constant('POST'),
    path: fc.constant('/v1/generations'),
    body,
    contentType,
    contentEncoding,
    idempotencyKey,
    authenticated: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, fc.constant(false)),
    ...headers,
  });

/** A path segment as a client may send it: encoded text, or raw pieces such as stray and NUL escapes. */
const pathSegment = fc.oneof(
  fc.string({ maxLength: 40 }).map(encodeURIComponent),
  // Control characters and NUL, properly escaped.
  fc.string({ unit: 'binary-ascii', maxLength: 12 }).map(encodeURIComponent),
  fc.string({
    unit: fc.constantFrom('%', '%00', '%ff', '%E0%A4', '0', 'a', 'F', '.', 'job_', '_', '~', '/'),
    maxLength: 40,
  }),
  fc.stringMatching(/^job_[0-9a-f]{32}$/),
);

const pathRequest = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'),
  path: fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .tuple(pathSegment, fc.constantFrom('', '/content', '/cancel', '/', '/x'))
        .map(([id, rest]) => `/v1/generations/${id}${rest}`),
    },
    pathSegment.map((segment) => `/${segment}`),
    pathSegment.map((segment) => `/v1/${segment}`),
  ),
  authenticated: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, fc.constant(false)),
});

const RUNS = { jsonValues: 100, nearValid: 160, rawStrings: 90, paths: 130 };

describe('fuzz: every answer is a 2xx or a 4xx in the error shape', () => {
  let ctx: TestContext;
  let api: ApiTarget;
  /** Keys the API accepted: a later rejection with one of them may rightly find its job. */
  const acceptedKeys = new Set<string>();

  before(async () => {
    // No worker: accepted jobs stay queued, which is all these properties need.
    ctx = await createTestContext();
    api = await startApi(ctx);
  });
  after(() => ctx.cleanup());

  async function send(request: FuzzRequest): Promise<Response> {
    const headers = new Headers();
    if (request.contentType !== undefined) headers.set('Content-Type', request.contentType);
    if (request.contentEncoding !== undefined) headers.set('Content-Encoding', request.contentEncoding);
    if (request.idempotencyKey !== undefined) headers.set('Idempotency-Key', request.idempotencyKey);
    // Bytes, so that fetch adds no Content-Type of its own.
    const body = request.body === undefined ? undefined : new TextEncoder().encode(request.body);
    return apiFetch(
      api,
      request.path,
      { method: request.method, headers, body },
      request.authenticated ? api.apiKey : null,
    );
  }

  /** The key as the server saw it: fetch trims surrounding whitespace. */
  function keyAsSent(request: FuzzRequest): string | undefined {
    if (request.idempotencyKey === undefined) return undefined;
    return new Headers({ k: request.idempotencyKey }).get('k') ?? undefined;
  }

  /** A dropped connection rejects `fetch`, which fails the property as a 5xx would. */
  async function checkAnswer(request: FuzzRequest): Promise<void> {
    const response = await send(request);
    const text = await response.text();
    const context = `${response.status} ${text.slice(0, 300)} for ${JSON.stringify(request).slice(0, 300)}`;
    assert.ok(
      (response.status >= 200 && response.status < 300) || (response.status >= 400 && response.status < 500),
      context,
    );
    if (response.status >= 400) {
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/, context);
      assertErrorShape(JSON.parse(text), context);
    }
    const key = keyAsSent(request);
    const isSubmission = request.method === 'POST' && request.path === '/v1/generations';
    if (isSubmission && request.authenticated && key !== undefined) {
      await checkJobRow(key, response.status === 202, context);
    }
  }

  /** An accepted submission has its job; a rejected one leaves none, unless its key was accepted before. */
  async function checkJobRow(key: string, accepted: boolean, context: string): Promise<void> {
    const row = await findJob(ctx.database.db, jobIdFor(ctx.userId, key));
    if (accepted) {
      assert.ok(row, context);
      acceptedKeys.add(key);
    } else if (!acceptedKeys.has(key)) {
      assert.equal(row, undefined, `a rejected submission left a job: ${context}`);
    }
  }

  function run(name: string, requests: fc.Arbitrary<FuzzRequest>, numRuns: number): void {
    test(`${name} (${numRuns} requests)`, async () => {
      await fc.assert(fc.asyncProperty(requests, checkAnswer), { numRuns });
    });
  }

  run('arbitrary JSON values as bodies', submission(fc.jsonValue().map(toJson)), RUNS.jsonValues);
  // Well-formed headers, so that the body is what decides.
  const cleanHeaders = {
    contentType: fc.constant('application/json'),
    contentEncoding: fc.constant(undefined),
    idempotencyKey: fc.uuid(),
    authenticated: fc.constant(true),
  };
  run('near-valid bodies', submission(nearValidBody, cleanHeaders), RUNS.nearValid);
  run(
    'random strings as raw bodies',
    submission(fc.string({ unit: 'binary', maxLength: 200 })),
    RUNS.rawStrings,
  );
  run('random paths and methods', pathRequest, RUNS.paths);

  test('the API still answers after all that', async () => {
    const response = await apiFetch(api, '/healthz');
    assert.equal(response.status, 200);
  });
});
