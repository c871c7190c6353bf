import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import express from 'express';
import { generateImageBare } from './bare-workflow.js';

/**
 * The `bare` baseline's API process: `POST /generations` starts the workflow and answers 202 with its
 * id, no database; `GET /generations/:id/result` answers once that workflow ended (a long poll on
 * Temporal, the bare design's way to learn the end). Prints `bare api listening <url>`.
 */
async function main(): Promise<void> {
  const connection = await Connection.connect({ address: process.env.BASELINE_TEMPORAL_ADDRESS! });
  const client = new Client({ connection });
  const taskQueue = process.env.BASELINE_TASK_QUEUE!;
  const app = express();
  app.use(express.json());
  app.post('/generations', async (req, res) => {
    const { prompt } = req.body as { prompt: string };
    const handle = await client.workflow.start(generateImageBare, {
      taskQueue,
      workflowId: `bare-${randomUUID()}`,
      args: [prompt],
    });
    res.status(202).json({ id: handle.workflowId });
  });
  app.get('/generations/:id/result', async (req, res) => {
    const bytes: number = await client.workflow.getHandle<typeof generateImageBare>(req.params.id).result();
    res.json({ bytes });
  });
  const server = app.listen(0, '127.0.0.1', () => {
    console.log(`bare api listening http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  process.once('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    void connection.close();
  });
}

await main();
