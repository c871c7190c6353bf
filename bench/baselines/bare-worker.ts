import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker } from '@temporalio/worker';
import { bareActivities } from './bare-activities.js';

/**
 * The `bare` baseline's worker process: its own workflow file, bundled by this worker, on its own task
 * queue, with the SDK's default worker options. Prints `bare worker polling` once it polls.
 */
async function main(): Promise<void> {
  const connection = await NativeConnection.connect({ address: process.env.BASELINE_TEMPORAL_ADDRESS! });
  const worker = await Worker.create({
    connection,
    taskQueue: process.env.BASELINE_TASK_QUEUE!,
    workflowsPath: fileURLToPath(new URL('./bare-workflow.ts', import.meta.url)),
    activities: bareActivities,
  });
  process.once('SIGTERM', () => worker.shutdown());
  const running = worker.run();
  console.log('bare worker polling');
  await running;
  await connection.close();
}

await main();
