import { ensureGoTool, MINIO } from '../../src/devstack/go-tools.js';
import { checkPrerequisites } from '../../src/devstack/prerequisites.js';
import { ensureTemporalCli } from '../../src/devstack/temporal-cli.js';
import { startTemporalDevServer } from '../../src/devstack/temporal-dev-server.js';
import { freePort } from './free-port.js';
import { startMinio } from './minio.js';
import { startPostgresCluster } from './postgres.js';

/** Where the servers shared by all test files are; passed to test processes through the environment. */
export interface SharedStackEnv {
  KILN_TEST_PG_BASE_URL: string;
  KILN_TEST_TEMPORAL_ADDRESS: string;
  KILN_TEST_S3_ENDPOINT: string;
  KILN_TEST_S3_REGION: string;
  KILN_TEST_S3_ACCESS_KEY_ID: string;
  KILN_TEST_S3_SECRET_ACCESS_KEY: string;
}

export interface SharedStack {
  env: SharedStackEnv;
  /** The Temporal dev server's process id, for the bench's CPU and memory readings. */
  temporalPid: number | undefined;
  stop(): Promise<void>;
}

/** The servers if all started; otherwise stops those that did, and throws the first failure. */
async function allOrStopStarted<T extends readonly { stop(): Promise<void> }[]>(results: {
  [K in keyof T]: PromiseSettledResult<T[K]>;
}): Promise<T> {
  const failure = results.find((result) => result.status === 'rejected');
  if (!failure)
    return results.map((result) => (result as PromiseFulfilledResult<unknown>).value) as unknown as T;
  const started = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  await Promise.allSettled(started.map((server) => server.stop()));
  throw failure.reason;
}

/**
 * Real PostgreSQL, Temporal dev server and MinIO on free loopback ports. The dev server keeps its state
 * in memory unless given `temporalDbFile` (a SQLite file, which the bench can ask for).
 */
export async function startSharedStack(
  log: (line: string) => void = console.error,
  options: { temporalDbFile?: string } = {},
): Promise<SharedStack> {
  await checkPrerequisites({ postgres: true, temporal: true, minio: true }, log);
  await ensureTemporalCli(log);
  await ensureGoTool(MINIO, log);
  const started = await Promise.allSettled([
    startPostgresCluster(),
    startTemporalDevServer({
      port: await freePort(),
      httpPort: await freePort(),
      ...(options.temporalDbFile ? { dbFile: options.temporalDbFile } : {}),
    }),
    startMinio(),
  ]);
  const [postgres, temporal, minio] = await allOrStopStarted(started);
  return {
    env: {
      KILN_TEST_PG_BASE_URL: postgres.urlFor(''),
      KILN_TEST_TEMPORAL_ADDRESS: temporal.address,
      KILN_TEST_S3_ENDPOINT: minio.endpoint,
      KILN_TEST_S3_REGION: minio.region,
      KILN_TEST_S3_ACCESS_KEY_ID: minio.accessKeyId,
      KILN_TEST_S3_SECRET_ACCESS_KEY: minio.secretAccessKey,
    },
    temporalPid: temporal.process.pid,
    stop: async () => {
      await Promise.allSettled([postgres.stop(), temporal.stop(), minio.stop()]);
    },
  };
}
