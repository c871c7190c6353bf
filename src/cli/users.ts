import { loadConfig } from '../config.js';
import { openDatabase } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import { createUser, findUserByName, issueApiKey, listUsers, revokeApiKeys } from '../db/user-repository.js';
import type { DatabaseHandle } from '../db/database.js';

const USAGE = `usage: npm run users -- <command>
  create <name>   create a user and print its first API key
  key <name>      issue another API key for a user
  revoke <name>   revoke every API key of a user
  list            list users`;

async function userNamed(database: DatabaseHandle, name: string) {
  const user = await findUserByName(database.db, name);
  if (!user) throw new Error(`no user named ${name}`);
  return user;
}

async function run(database: DatabaseHandle, command: string | undefined, name: string | undefined) {
  if (command === 'list') {
    for (const user of await listUsers(database.db)) console.log(`${user.id}\t${user.name}`);
    return;
  }
  if (!name) throw new Error(USAGE);
  switch (command) {
    case 'create': {
      const user = await createUser(database.db, name);
      console.log(`user ${user.id} (${name})\nAPI key: ${await issueApiKey(database.db, user.id)}`);
      return;
    }
    case 'key':
      console.log(`API key: ${await issueApiKey(database.db, (await userNamed(database, name)).id)}`);
      return;
    case 'revoke':
      console.log(`revoked ${await revokeApiKeys(database.db, (await userNamed(database, name)).id)} key(s)`);
      return;
    default:
      throw new Error(USAGE);
  }
}

/** `npm run users -- …`: user and API-key administration against the configured database. */
async function main(): Promise<void> {
  const [command, name] = process.argv.slice(2);
  const database = await openDatabase(loadConfig().database);
  try {
    await migrateToLatest(database.db);
    await run(database, command, name);
  } finally {
    await database.close();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
