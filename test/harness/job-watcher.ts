import WebSocket from 'ws';
import type { ServerMessage } from '../../src/api/job-stream.js';
import { isTerminal, type Job } from '../../src/jobs/job.js';

/** A running API and the key to call it with. */
export interface ApiTarget {
  url: string;
  apiKey: string;
}

/** fetch against the API, authenticated unless `apiKey` is null. */
export function apiFetch(
  api: ApiTarget,
  path: string,
  init: RequestInit = {},
  apiKey: string | null = api.apiKey,
) {
  const headers = new Headers(init.headers);
  if (apiKey !== null) headers.set('Authorization', `Bearer ${apiKey}`);
  return fetch(`${api.url}${path}`, { ...init, headers });
}

/** Opens `/v1/stream` and collects every message the server sends. */
export async function openStream(api: ApiTarget): Promise<{ socket: WebSocket; messages: ServerMessage[] }> {
  const socket = new WebSocket(`${api.url.replace(/^http/, 'ws')}/v1/stream`, {
    headers: { Authorization: `Bearer ${api.apiKey}` },
  });
  const messages: ServerMessage[] = [];
  socket.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString()) as ServerMessage));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  return { socket, messages };
}

/** Subscribes to a job and resolves with every snapshot received, once one is terminal. */
export async function watchUntilDone(api: ApiTarget, jobId: string, timeoutMs = 60_000): Promise<Job[]> {
  const { socket, messages } = await openStream(api);
  socket.send(JSON.stringify({ type: 'subscribe', id: jobId }));
  try {
    return await new Promise<Job[]>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`job ${jobId} not done: ${JSON.stringify(messages)}`)),
        timeoutMs,
      );
      socket.on('message', () => {
        const jobs = messages.flatMap((m) => (m.type === 'job' && m.job.id === jobId ? [m.job] : []));
        const error = messages.find((m) => m.type === 'error');
        if (error) reject(new Error(`stream error: ${JSON.stringify(error)}`));
        if (jobs.some((job) => isTerminal(job.status))) {
          clearTimeout(timer);
          resolve(jobs);
        }
      });
    });
  } finally {
    socket.close();
  }
}

export async function getJob(api: ApiTarget, jobId: string): Promise<Job> {
  return (await (await apiFetch(api, `/v1/generations/${jobId}`)).json()) as Job;
}

/** Polls `GET /v1/generations/:id` until the job is terminal: for tests that do not watch a socket. */
export async function pollUntilDone(api: ApiTarget, jobId: string, timeoutMs = 60_000): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await getJob(api, jobId);
    if (isTerminal(job.status)) return job;
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${job.status}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function submit(
  api: ApiTarget,
  body: unknown,
  idempotencyKey: string | undefined,
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (idempotencyKey !== undefined) headers['Idempotency-Key'] = idempotencyKey;
  const response = await apiFetch(api, '/v1/generations', {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}
