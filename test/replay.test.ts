import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Resource } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Worker } from '@temporalio/worker';
import { PayloadEncryptionCodec } from '../src/encryption/payload-codec.js';
import { tracedWorkerOptions } from '../src/observability/temporal-tracing.js';
import { kilnDataConverter } from '../src/temporal-client.js';
import { convertPayloadLists } from './harness/history-payloads.js';
import { releaseHistories } from './harness/release-histories.js';

const workflowsPath = path.resolve(fileURLToPath(new URL('../src/workflows/index.ts', import.meta.url)));

/** The workers' data converter with encryption on: the fixtures were recorded without it. */
const payloadKeys = [{ id: 'replay', key: randomBytes(32) }];
const dataConverter = kilnDataConverter({ payloadKeys });

const histories = await releaseHistories();
const readHistory = async (file: string): Promise<unknown> => JSON.parse(await readFile(file, 'utf8'));

/*
 * Every history recorded at a release replays against today's workflow code: a change that would issue
 * other commands to a job started under that release throws DeterminismViolationError here, before a
 * deploy would fail it in flight. Such a change goes behind `patched()`.
 */
describe('histories recorded at each release replay against today’s code', () => {
  test('there is a recorded set to replay', () => {
    assert.ok(histories.length > 0, 'test/fixtures/histories holds no release');
  });
  for (const { release, name, file } of histories) {
    test(`${release}: ${name}`, async () => {
      await Worker.runReplayHistory({ workflowsPath, dataConverter }, await readHistory(file), name);
    });
  }
});

test('every recorded history replays with the tracing interceptors too: they change no command', async () => {
  const tracing = {
    spanProcessor: new SimpleSpanProcessor(new InMemorySpanExporter()),
    resource: Resource.default(),
  };
  const traced = tracedWorkerOptions({}, { runsWorkflows: true, tracing });
  assert.equal(traced.interceptors.workflowModules?.length, 1);
  // One replay worker, one bundle, for all of them.
  const recorded = await Promise.all(
    histories.map(async ({ release, name, file }) => ({
      workflowId: `${release}/${name}`,
      history: historyFromJSON(await readHistory(file)),
    })),
  );
  const results = Worker.runReplayHistories({ workflowsPath, dataConverter, ...traced }, recorded);
  let replayed = 0;
  for await (const result of results) {
    assert.equal(result.error, undefined, `${result.workflowId}: ${String(result.error)}`);
    replayed += 1;
  }
  assert.equal(replayed, histories.length);
});

test('a history whose payloads are encrypted replays through the same codec, and not without it', async () => {
  const recorded = histories.find((h) => h.name === 'image-end-to-end');
  assert.ok(recorded, 'no image-end-to-end history is recorded');
  const history = historyFromJSON(await readHistory(recorded.file));
  const codec = new PayloadEncryptionCodec(payloadKeys);
  await convertPayloadLists(history, (payloads) => codec.encode(payloads));

  await Worker.runReplayHistory({ workflowsPath, dataConverter }, history);
  await assert.rejects(
    Worker.runReplayHistory({ workflowsPath }, history),
    /Unknown encoding: binary\/encrypted/,
  );
});
