import { loadConfig } from '../config/index.js';
import { connectTemporalClient } from '../temporal-client.js';
import { promoteVersion, versionStates } from '../worker/worker-deployment.js';

const USAGE = `usage: npm run deployment -- <command>     (WORKER_DEPLOYMENT_NAME and WORKER_BUILD_ID set)
  promote [build-id]   make this build (or the one named: a rollback) the current version
  status               every version of the deployment: current, draining, drained…`;

async function main([command, buildId]: string[]): Promise<number> {
  const { temporal } = loadConfig();
  if (!temporal.deployment || (command !== 'promote' && command !== 'status')) {
    console.error(USAGE);
    return 2;
  }
  const client = await connectTemporalClient(temporal);
  try {
    const { deploymentName } = temporal.deployment;
    if (command === 'promote') {
      const version = { deploymentName, buildId: buildId ?? temporal.deployment.buildId };
      await promoteVersion(client, temporal.namespace, version);
      console.log(`${deploymentName} ${version.buildId} is current`);
    }
    for (const { buildId: build, status } of await versionStates(
      client,
      temporal.namespace,
      deploymentName,
    )) {
      console.log(`${build}\t${status}`);
    }
    return 0;
  } finally {
    await client.connection.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
