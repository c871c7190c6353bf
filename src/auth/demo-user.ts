import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Kysely } from 'kysely';
import type { Config } from '../config/index.js';
import type { Database } from '../db/schema.js';
import { createUser, findCallerByApiKey, findUserByName, issueApiKey } from '../db/user-repository.js';

export const DEMO_USER_NAME = 'demo';

async function readKey(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/**
 * The user `npm start` acts as, created on the default plan with `demoUserCredits` granted. Only the
 * key's hash is in the database, so the key itself is kept in a git-ignored file beside the data, to
 * print the same key on every start.
 */
export async function ensureDemoApiKey(
  db: Kysely<Database>,
  config: Pick<Config, 'dataDir' | 'plans' | 'demoUserCredits'>,
): Promise<string> {
  const file = path.join(config.dataDir, 'demo-api-key');
  const saved = await readKey(file);
  if (saved && (await findCallerByApiKey(db, saved))) return saved;
  const user =
    (await findUserByName(db, DEMO_USER_NAME)) ??
    (await createUser(db, DEMO_USER_NAME, {
      plan: config.plans.defaultPlan,
      credits: config.demoUserCredits,
    }));
  const key = await issueApiKey(db, user.id);
  await writeFile(file, `${key}\n`, { mode: 0o600 });
  return key;
}
