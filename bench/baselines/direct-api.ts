import type { AddressInfo } from 'node:net';
import express from 'express';
import { callFakeProvider } from './fake-provider-call.js';

/**
 * The `direct` baseline: the naive design, the provider called straight from the HTTP handler, which
 * answers 200 once the provider did. Nothing is durable. Prints `direct api listening <url>`.
 */
const app = express();
app.use(express.json());
app.post('/generations', async (req, res) => {
  const { prompt } = req.body as { prompt: string };
  res.json({ bytes: await callFakeProvider(prompt) });
});
const server = app.listen(0, '127.0.0.1', () => {
  console.log(`direct api listening http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
process.once('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
});
