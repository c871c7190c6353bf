import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { PayloadEncryptionCodec } from '../src/encryption/payload-codec.js';
import { kilnDataConverter } from '../src/temporal-client.js';
import { convertPayloadLists } from './harness/history-payloads.js';

const historyFile = fileURLToPath(new URL('./fixtures/run-generation-history.json', import.meta.url));
const workflowsPath = path.resolve(fileURLToPath(new URL('../src/workflows/index.ts', import.meta.url)));

/** The workers' data converter with encryption on: the fixture was recorded before it was. */
const payloadKeys = [{ id: 'replay', key: randomBytes(32) }];
const dataConverter = kilnDataConverter({ payloadKeys });

test('the workflow code replays a history recorded from a real run without nondeterminism', async () => {
  const history: unknown = JSON.parse(await readFile(historyFile, 'utf8'));
  // Throws DeterminismViolationError if today's code would issue different commands. Its payloads are
  // plaintext: the codec passes them through.
  await Worker.runReplayHistory({ workflowsPath, dataConverter }, history);
});

test('a history whose payloads are encrypted replays through the same codec, and not without it', async () => {
  const history = historyFromJSON(JSON.parse(await readFile(historyFile, 'utf8')));
  const codec = new PayloadEncryptionCodec(payloadKeys);
  await convertPayloadLists(history, (payloads) => codec.encode(payloads));

  await Worker.runReplayHistory({ workflowsPath, dataConverter }, history);
  await assert.rejects(
    Worker.runReplayHistory({ workflowsPath }, history),
    /Unknown encoding: binary\/encrypted/,
  );
});
