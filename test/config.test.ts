import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '../src/config/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Runs `change` and expects the config to refuse it (strict mode: assigning to a frozen value throws). */
function assertRefused(change: () => void): void {
  assert.throws(change, TypeError);
}

describe('loadConfig', () => {
  // Each assignment is refused twice: by the compiler, since the type is readonly all the way down (the
  // expected errors below check it), and by the frozen value at run time.
  test('the loaded configuration is frozen all the way down', () => {
    const key = `a:${randomBytes(32).toString('base64')}`;
    const config = loadConfig({ PAYLOAD_ENCRYPTION_KEYS: key });
    assertRefused(() => {
      // @ts-expect-error read-only
      config.http.port = 1;
    });
    assertRefused(() => {
      // @ts-expect-error read-only
      config.plans.byName.free!.maxRunning = 100;
    });
    assertRefused(() => {
      // @ts-expect-error read-only
      config.webhooks.retry.maxBackoffMs = 0;
    });
    assertRefused(() => {
      (config.codecServer.allowedOrigins as string[]).push('http://evil.example');
    });
    assertRefused(() => {
      // @ts-expect-error read-only
      config.temporal.payloadKeys[0]!.id = 'b';
    });
    assert.equal(config.http.port, 3000);
    assert.equal(config.plans.byName.free?.maxRunning, 2);
    // Byte arrays cannot be frozen: the key stays a usable 32-byte buffer.
    assert.equal(config.temporal.payloadKeys[0]?.key.length, 32);
  });

  test('a second load is not affected by the first being frozen', () => {
    loadConfig({});
    const config = loadConfig({ PLANS: '{"team":{"maxRunning":4,"weight":2}}', DEFAULT_PLAN: 'team' });
    assert.deepEqual(Object.keys(config.plans.byName), ['team']);
    assert.deepEqual(loadConfig({}).plans.byName, {
      free: { maxRunning: 2, weight: 1, cache: 'off' },
      pro: { maxRunning: 8, weight: 4, cache: 'off' },
    });
  });

  test('the result cache: user scope, a day, free by default; a plan may reuse; a bad scope is named at start', () => {
    assert.deepEqual(loadConfig({}).resultCache, { scope: 'user', maxAgeSeconds: 86_400, price: 0 });
    const config = loadConfig({
      RESULT_CACHE_SCOPE: 'deployment',
      RESULT_CACHE_MAX_AGE_SECONDS: '0',
      RESULT_CACHE_PRICE: '1',
      PLANS: '{"team":{"maxRunning":4,"weight":2,"cache":"reuse"}}',
      DEFAULT_PLAN: 'team',
    });
    assert.deepEqual(config.resultCache, { scope: 'deployment', maxAgeSeconds: 0, price: 1 });
    assert.equal(config.plans.byName.team?.cache, 'reuse');
    assert.throws(
      () => loadConfig({ RESULT_CACHE_SCOPE: 'tenant' }),
      (error: unknown) => {
        return error instanceof ConfigError && error.message.includes('RESULT_CACHE_SCOPE');
      },
    );
  });

  test('embedded state lives in .data at the repository root', () => {
    const config = loadConfig({});
    assert.equal(config.dataDir, `${ROOT}.data`);
    assert.deepEqual(config.database, {
      url: 'postgres://kiln@127.0.0.1:54329/kiln',
      embedded: { dataDir: `${ROOT}.data/postgres`, port: 54329 },
    });
    assert.deepEqual(config.storage, { driver: 'filesystem', dir: `${ROOT}.data/objects` });
  });

  test('KILN_DATA_DIR and the embedded ports move the embedded services', () => {
    const config = loadConfig({
      KILN_DATA_DIR: '/srv/kiln',
      EMBEDDED_POSTGRES_PORT: '6001',
      TEMPORAL_DEV_PORT: '6002',
      TEMPORAL_DEV_UI_PORT: '6003',
    });
    assert.equal(config.dataDir, '/srv/kiln');
    assert.deepEqual(config.database, {
      url: 'postgres://kiln@127.0.0.1:6001/kiln',
      embedded: { dataDir: '/srv/kiln/postgres', port: 6001 },
    });
    assert.deepEqual(config.storage, { driver: 'filesystem', dir: '/srv/kiln/objects' });
    assert.deepEqual(config.temporal.devServer, { port: 6002, uiPort: 6003 });
  });

  test('DATABASE_URL replaces the embedded server', () => {
    const url = 'postgres://app@db.internal:5432/kiln';
    assert.deepEqual(loadConfig({ DATABASE_URL: url }).database, { url, embedded: undefined });
  });

  test('a bad variable stops the start with a ConfigError naming it', () => {
    for (const [name, value] of [
      ['PORT', 'not-a-port'],
      ['PORT', '70000'],
      ['PLANS', '{"free":'],
      ['PLANS', '{"free":{"maxRunning":0,"weight":1}}'],
      ['S3_FORCE_PATH_STYLE', 'yes'],
      ['LOG_LEVEL', 'loud'],
      ['METRICS_TOKEN', 'too-short'],
      ['OTEL_EXPORTER_OTLP_ENDPOINT', 'localhost:4318'],
      ['FAL_BASE_URL', 'queue.fal.run'],
      ['FAL_POLL_INTERVAL_MS', '0'],
    ] as const) {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (error) => error instanceof ConfigError && error.message.includes(name),
        `${name}=${value}`,
      );
    }
    assert.throws(
      () => loadConfig({ DEFAULT_PLAN: 'gold' }),
      (error) => error instanceof ConfigError && /DEFAULT_PLAN: gold is not in PLANS/.test(error.message),
    );
  });

  test('DEFAULT_PROVIDER must be a provider this deployment offers', () => {
    for (const [env, message] of [
      [{ DEFAULT_PROVIDER: 'midjourney' }, /DEFAULT_PROVIDER: Invalid option/],
      [{ DEFAULT_PROVIDER: '' }, /DEFAULT_PROVIDER: Invalid option/],
      [{ DEFAULT_PROVIDER: 'openai' }, /DEFAULT_PROVIDER: openai needs OPENAI_API_KEY/],
      [{ DEFAULT_PROVIDER: 'openai', OPENAI_API_KEY: '' }, /DEFAULT_PROVIDER: openai needs OPENAI_API_KEY/],
      [
        { DEFAULT_PROVIDER: 'replicate', OPENAI_API_KEY: 'sk-test' },
        /DEFAULT_PROVIDER: replicate needs REPLICATE_API_TOKEN/,
      ],
      [{ DEFAULT_PROVIDER: 'fal' }, /DEFAULT_PROVIDER: fal needs FAL_KEY/],
    ] as const) {
      assert.throws(
        () => loadConfig(env),
        (error) => error instanceof ConfigError && message.test(error.message),
        JSON.stringify(env),
      );
    }
    assert.equal(loadConfig({}).providers.defaultProvider, 'local');
    assert.equal(
      loadConfig({ DEFAULT_PROVIDER: 'openai', OPENAI_API_KEY: 'sk-test' }).providers.defaultProvider,
      'openai',
    );
    assert.equal(
      loadConfig({ DEFAULT_PROVIDER: 'replicate', REPLICATE_API_TOKEN: 'r8_test' }).providers.defaultProvider,
      'replicate',
    );
  });
});
