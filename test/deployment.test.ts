import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { validate as lintDockerfile } from 'dockerfile-utils';
import { parse } from 'yaml';
import { loadConfig } from '../src/config/index.js';
import { KILN_SEARCH_ATTRIBUTES } from '../src/workflows/search-attributes.js';

/*
 * No Docker engine runs here, so the deployment files are checked as far as files can be: the compose
 * file against the Compose Specification's JSON schema (test/fixtures/compose-spec.json, from
 * compose-spec/compose-spec at 170098b, Apache-2.0), the Dockerfile with a linter, and the app services'
 * environment with Kiln's own configuration schema.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (file: string) => readFile(`${ROOT}${file}`, 'utf8');

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test: unknown };
  depends_on?: Record<string, { condition: string }>;
  deploy?: { replicas?: number };
  stop_grace_period?: string;
  restart?: string;
}

async function composeValidator() {
  const schema = JSON.parse(await read('test/fixtures/compose-spec.json')) as Record<string, unknown>;
  // The spec names its draft with an https URI Ajv does not know; the schema itself is plain draft-07.
  delete schema.$schema;
  // The spec uses `format: "duration"` and the like without defining them: checked by shape only.
  return new Ajv({ allErrors: true, strict: false, validateFormats: false }).compile(schema);
}

async function composeFile(): Promise<{ services: Record<string, ComposeService> }> {
  return parse(await read('docker-compose.yml'), { merge: true }) as {
    services: Record<string, ComposeService>;
  };
}

const seconds = (duration: string) => Number(/^(\d+)s$/.exec(duration)?.[1]);

describe('docker-compose.yml', () => {
  test('is valid against the Compose Specification schema, which refuses a broken copy', async () => {
    const valid = await composeValidator();
    const compose = await composeFile();
    assert.ok(valid(compose), JSON.stringify(valid.errors, null, 2));
    const broken = structuredClone(compose) as unknown as { services: { api: { ports: unknown } } };
    broken.services.api.ports = 3000;
    assert.equal(valid(broken), false, 'the schema check can fail');
  });

  test('runs Temporal with PostgreSQL persistence and fairness on, its UI, PostgreSQL, MinIO, API and workers', async () => {
    const { services } = await composeFile();
    assert.deepEqual(Object.keys(services).sort(), [
      'api',
      'minio',
      'minio-setup',
      'postgresql',
      'temporal',
      'temporal-setup',
      'temporal-ui',
      'worker',
    ]);
    assert.equal(services.temporal?.environment?.DB, 'postgres12');
    assert.equal(services.temporal?.environment?.POSTGRES_SEEDS, 'postgresql');
    const dynamicConfig = parse(await read('deploy/temporal-dynamic-config.yaml')) as Record<
      string,
      { value: unknown }[]
    >;
    assert.equal(dynamicConfig['matching.useNewMatcher']?.[0]?.value, true);
    assert.equal(dynamicConfig['matching.enableFairness']?.[0]?.value, true);
    assert.ok((services.worker?.deploy?.replicas ?? 1) >= 2, 'the worker is scaled out');
  });

  test('every long-running service has a health check, and the app waits for what it needs', async () => {
    const { services } = await composeFile();
    for (const [name, service] of Object.entries(services)) {
      if (name === 'minio-setup' || name === 'temporal-setup') continue;
      assert.ok(service.healthcheck?.test, `${name} has no health check`);
    }
    for (const name of ['api', 'worker']) {
      assert.deepEqual(services[name]?.depends_on, {
        postgresql: { condition: 'service_healthy' },
        temporal: { condition: 'service_healthy' },
        'minio-setup': { condition: 'service_completed_successfully' },
        'temporal-setup': { condition: 'service_completed_successfully' },
      });
    }
  });

  test("registers every search attribute Kiln's workflows set, once Temporal is healthy", async () => {
    const setup = (await composeFile()).services['temporal-setup'];
    assert.deepEqual(setup?.depends_on, { temporal: { condition: 'service_healthy' } });
    const script = setup?.entrypoint?.join(' ') ?? '';
    for (const { name } of KILN_SEARCH_ATTRIBUTES) {
      assert.match(script, new RegExp(`--name ${name} --type Keyword`), name);
    }
  });

  test("the app services' environment passes Kiln's configuration schema, and their commands exist", async () => {
    const { services } = await composeFile();
    const attemptSeconds = (env: Record<string, string>) => loadConfig(env).timeouts.providerAttemptSeconds;
    for (const name of ['api', 'worker']) {
      const env = services[name]?.environment ?? {};
      const config = loadConfig(env);
      assert.equal(config.storage.driver, 's3');
      assert.deepEqual(config.database, {
        url: 'postgres://kiln:kiln@postgresql:5432/kiln',
        embedded: undefined,
      });
      const entry = services[name]?.command?.[1] ?? '';
      assert.ok(existsSync(`${ROOT}${entry.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts')}`), entry);
    }
    assert.equal(loadConfig(services.api?.environment ?? {}).http.host, '0.0.0.0');
    // A worker stopping gets its in-flight provider calls' whole attempt timeout before Docker kills it.
    const grace = seconds(services.worker?.stop_grace_period ?? '');
    assert.ok(grace > attemptSeconds(services.worker?.environment ?? {}), `stop_grace_period ${grace}s`);
  });
});

describe('Dockerfile', () => {
  test('passes the linter (dockerfile-utils), which flags a broken one', async () => {
    const problems = lintDockerfile(await read('Dockerfile'));
    assert.deepEqual(
      problems.map(({ range, message }) => {
        const text = typeof message === 'string' ? message : message.value;
        return `line ${range.start.line + 1}: ${text}`;
      }),
      [],
    );
    const broken = lintDockerfile('FROM node:20\nEXPOSE port\nCMD node\nCMD node\n');
    assert.ok(broken.length >= 1);
  });

  test('builds with the lock file, runs as a non-root user, and starts the API by default', async () => {
    const dockerfile = await read('Dockerfile');
    assert.match(dockerfile, /COPY package\.json package-lock\.json/);
    assert.match(dockerfile, /^USER node$/m);
    assert.match(dockerfile, /^CMD \["node", "dist\/api\/main\.js"\]$/m);
  });
});
