import { loadConfig, type Config } from '../config/index.js';
import { grantCredits } from '../db/credit-repository.js';
import { openDatabase } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import { embeddedPostgresForCommand } from '../devstack/embedded-postgres.js';
import {
  createUser,
  findUserByName,
  issueApiKey,
  listUsers,
  revokeApiKeys,
  setPlan,
} from '../db/user-repository.js';
import { ensureWebhookSecret } from '../db/webhook-secret-repository.js';
import type { DatabaseHandle } from '../db/database.js';

const USAGE = `usage: npm run users -- <command>
  create <name>           create a user on the default plan and print its first API key
  key <name>              issue another API key for a user
  revoke <name>           revoke every API key of a user
  grant <name> <amount>   add credits (a positive integer) and print the new balance
  plan <name> <plan>      move a user to another plan (a name in PLANS)
  webhook-secret <name>   print the secret that signs a user's webhooks (created if they have none)
  list                    list users: id, name, plan, balance`;

/** The balance column is a 32-bit integer. */
const MAX_CREDITS = 2_147_483_647;

function parseAmount(text: string | undefined): number {
  const amount = Number(text);
  if (!/^[1-9][0-9]*$/.test(text ?? '') || amount > MAX_CREDITS) {
    throw new Error(`amount must be a positive integer up to ${MAX_CREDITS}, not ${text ?? '(none)'}`);
  }
  return amount;
}

function parsePlan(plans: Config['plans'], text: string | undefined): string {
  if (text === undefined || !Object.hasOwn(plans.byName, text)) {
    throw new Error(`plan must be one of ${Object.keys(plans.byName).join(', ')}, not ${text ?? '(none)'}`);
  }
  return text;
}

async function userNamed(database: DatabaseHandle, name: string) {
  const user = await findUserByName(database.db, name);
  if (!user) throw new Error(`no user named ${name}`);
  return user;
}

async function run(database: DatabaseHandle, config: Config, args: (string | undefined)[]) {
  const [command, name, value] = args;
  if (command === 'list') {
    for (const user of await listUsers(database.db)) {
      console.log(`${user.id}\t${user.name}\t${user.plan}\t${user.credits}`);
    }
    return;
  }
  if (!name) throw new Error(USAGE);
  switch (command) {
    case 'create': {
      const user = await createUser(database.db, name, { plan: config.plans.defaultPlan });
      console.log(`user ${user.id} (${name})\nAPI key: ${await issueApiKey(database.db, user.id)}`);
      return;
    }
    case 'grant': {
      const amount = parseAmount(value);
      const balance = await grantCredits(database.db, (await userNamed(database, name)).id, amount);
      console.log(`granted ${amount} credits to ${name}; balance ${balance}`);
      return;
    }
    case 'plan': {
      const plan = parsePlan(config.plans, value);
      await setPlan(database.db, (await userNamed(database, name)).id, plan);
      console.log(`${name} is on plan ${plan}`);
      return;
    }
    case 'webhook-secret':
      console.log((await ensureWebhookSecret(database.db, (await userNamed(database, name)).id)).secret);
      return;
    case 'key':
      console.log(`API key: ${await issueApiKey(database.db, (await userNamed(database, name)).id)}`);
      return;
    case 'revoke': {
      const revoked = await revokeApiKeys(database.db, (await userNamed(database, name)).id);
      if (revoked === 0) console.log(`${name} had no active API key`);
      else console.log(`revoked ${revoked} API ${revoked === 1 ? 'key' : 'keys'} of ${name}`);
      return;
    }
    default:
      throw new Error(USAGE);
  }
}

/**
 * `npm run users -- …`: user and API-key administration against the configured database, or the
 * embedded one (the running `npm start`'s, else started for the command).
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const stopEmbedded = await embeddedPostgresForCommand(config.database, (line) => console.error(line));
  const database = openDatabase(config.database);
  try {
    await migrateToLatest(database.db);
    await run(database, config, process.argv.slice(2));
  } finally {
    await database.close();
    await stopEmbedded();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
