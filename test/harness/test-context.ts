import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import pg from 'pg';
import { loadConfig, type Config } from '../../src/config/index.js';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { createUser, issueApiKey } from '../../src/db/user-repository.js';
import { createObjectStore } from '../../src/storage/create-object-store.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { ensureBucket } from '../../src/storage/s3-object-store.js';
import { connectTemporalClient } from '../../src/temporal-client.js';
import { startSharedStack, type SharedStackEnv } from './shared-stack.js';

/** One test file's slice of the shared servers: its own database, task queue and bucket. */
export interface TestContext {
  /** The environment a Kiln process for this context runs with (for child processes). */
  env: Record<string, string>;
  config: Config;
  database: DatabaseHandle;
  temporal: Client;
  store: ObjectStore;
  /** A user of this context and its API key; it has TEST_USER_CREDITS, enough never to run out. */
  userId: string;
  apiKey: string;
  /** Another user with its own key: on the default plan with TEST_USER_CREDITS unless told otherwise. */
  createUser(options?: { plan?: string; credits?: number }): Promise<{ userId: string; apiKey: string }>;
  /** Registers something to undo at cleanup; undone in reverse order. */
  onCleanup(undo: () => Promise<void> | void): void;
  /** Call from the test file's `after` hook. */
  cleanup(): Promise<void>;
}

/** Credits of a test user unless a test asks for others: no test here runs out of them by accident. */
export const TEST_USER_CREDITS = 1_000_000;

/** Every server a context needs; typed against `SharedStackEnv`, so a new one cannot be left out. */
const SHARED_STACK_KEYS = {
  KILN_TEST_PG_BASE_URL: true,
  KILN_TEST_TEMPORAL_ADDRESS: true,
  KILN_TEST_S3_ENDPOINT: true,
  KILN_TEST_S3_REGION: true,
  KILN_TEST_S3_ACCESS_KEY_ID: true,
  KILN_TEST_S3_SECRET_ACCESS_KEY: true,
} satisfies Record<keyof SharedStackEnv, true>;

let sharedStack: Promise<{ env: SharedStackEnv; stop(): Promise<void> }> | undefined;
let contextsOpen = 0;

/** Servers from `npm test`'s runner, or, when a file runs alone, a stack of its own. */
function acquireStack(): Promise<{ env: SharedStackEnv; stop(): Promise<void> }> {
  contextsOpen += 1;
  sharedStack ??= process.env.KILN_TEST_PG_BASE_URL
    ? Promise.resolve({ env: process.env as unknown as SharedStackEnv, stop: () => Promise.resolve() })
    : startSharedStack();
  return sharedStack;
}

async function releaseStack(): Promise<void> {
  contextsOpen -= 1;
  if (contextsOpen === 0 && sharedStack) {
    const stack = await sharedStack;
    sharedStack = undefined;
    await stack.stop();
  }
}

async function createDatabase(baseUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: `${baseUrl}postgres` });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

/**
 * Creates a fresh context; the test file calls `cleanup()` when done. `overrides` are
 * environment variables on top of the test defaults (fast local provider, short heartbeat timeout).
 */
export async function createTestContext(
  overrides: Record<string, string> = {},
  servers: Partial<SharedStackEnv> = {},
): Promise<TestContext> {
  // A caller that brings every server of its own (the fault suite, the chaos campaign) needs no shared ones.
  const ownServers = Object.keys(SHARED_STACK_KEYS).every((key) => key in servers);
  const stack = { ...(ownServers ? {} : (await acquireStack()).env), ...servers } as SharedStackEnv;
  const undos: (() => Promise<void> | void)[] = ownServers ? [] : [releaseStack];
  const suffix = randomBytes(4).toString('hex');
  const databaseName = `kiln_test_${suffix}`;
  await createDatabase(stack.KILN_TEST_PG_BASE_URL, databaseName);
  const env: Record<string, string> = {
    PORT: '0',
    // Several worker processes share this machine in some tests: each serves /metrics on a port of its own.
    WORKER_HTTP_PORT: '0',
    LOG_LEVEL: 'warn',
    DATABASE_URL: `${stack.KILN_TEST_PG_BASE_URL}${databaseName}`,
    TEMPORAL_ADDRESS: stack.KILN_TEST_TEMPORAL_ADDRESS,
    TEMPORAL_TASK_QUEUE: `kiln-test-${suffix}`,
    STORAGE_DRIVER: 's3',
    S3_BUCKET: `kiln-test-${suffix}`,
    S3_ENDPOINT: stack.KILN_TEST_S3_ENDPOINT,
    S3_REGION: stack.KILN_TEST_S3_REGION,
    S3_ACCESS_KEY_ID: stack.KILN_TEST_S3_ACCESS_KEY_ID,
    S3_SECRET_ACCESS_KEY: stack.KILN_TEST_S3_SECRET_ACCESS_KEY,
    LOCAL_PROVIDER_DELAY_MS: '300',
    LOCAL_PROVIDER_STEPS: '3',
    PROVIDER_HEARTBEAT_TIMEOUT_SECONDS: '3',
    // Room for the many-job tests; the fairness tests set their own plans.
    PLANS: JSON.stringify({ free: { maxRunning: 50, weight: 1 }, pro: { maxRunning: 50, weight: 4 } }),
    SUBMIT_RATE_PER_MINUTE: '100000',
    SUBMIT_BURST: '1000',
    ...overrides,
  };
  const config = loadConfig(env);
  const database = openDatabase(config.database);
  await migrateToLatest(database.db);
  if (config.storage.driver === 's3') await ensureBucket(config.storage);
  const temporal = await connectTemporalClient(config.temporal);
  let usersCreated = 0;
  const createContextUser = async ({ plan = config.plans.defaultPlan, credits = TEST_USER_CREDITS } = {}) => {
    const user = await createUser(database.db, `tester-${suffix}-${usersCreated++}`, { plan, credits });
    return { userId: user.id, apiKey: await issueApiKey(database.db, user.id) };
  };
  const { userId, apiKey } = await createContextUser();
  undos.push(
    () => database.close(),
    () => temporal.connection.close(),
  );
  return {
    env,
    config,
    database,
    temporal,
    store: createObjectStore(config.storage),
    userId,
    apiKey,
    createUser: createContextUser,
    onCleanup: (undo) => undos.push(undo),
    cleanup: async () => {
      for (const undo of undos.splice(0).reverse()) await undo();
    },
  };
}
