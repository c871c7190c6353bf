import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Client } from '@temporalio/client';
import type { Config } from '../config/index.js';
import type { DatabaseHandle } from '../db/database.js';
import type { Logger } from '../logger.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';
import type { ObjectStore } from '../storage/object-store.js';
import { cancelGeneration } from '../use-cases/cancel-generation.js';
import { extendDeadline } from '../use-cases/extend-deadline.js';
import { findOwnedJob } from '../use-cases/owned-job.js';
import { ApiError } from './api-error.js';
import { createApp } from './app.js';
import { answerClientError } from './client-error.js';
import { callerOfUpgrade } from './authenticate.js';
import { JobEventHub } from './job-event-hub.js';
import { createJobStream, STREAM_PATH } from './job-stream.js';
import { KeySessions } from './key-sessions.js';
import { KnownKeys } from './known-keys.js';
import { RecentQueues } from '../use-cases/recent-queues.js';

export interface ApiServerDependencies {
  config: Config;
  database: DatabaseHandle;
  temporal: Client;
  store: ObjectStore;
  providers: ProviderRegistry;
  logger: Logger;
}

export interface RunningApiServer {
  url: string;
  close(): Promise<void>;
}

/** One HTTP server for Express and the job stream; the socket upgrade is authenticated like a request. */
export async function startApiServer(deps: ApiServerDependencies): Promise<RunningApiServer> {
  const { config, database, logger } = deps;
  const events = await JobEventHub.start(database, logger);
  const knownKeys = new KnownKeys(database.db);
  const keys = await KeySessions.start(database, logger, knownKeys, config.streamLimits);
  const app = createApp({
    ...deps,
    db: database.db,
    costs: config.costs,
    hub: events.hub,
    sessions: keys.sessions,
    knownKeys,
    queues: new RecentQueues(database.db, config),
  });
  const stream = createJobStream({
    hub: events.hub,
    sessions: keys.sessions,
    logger,
    callerOf: (req) => callerOfUpgrade(database.db, req),
    cancel: (userId, jobId) => cancelGeneration({ db: database.db, temporal: deps.temporal }, userId, jobId),
    extendDeadline: (userId, jobId, extension) =>
      extendDeadline({ db: database.db, temporal: deps.temporal }, userId, jobId, extension),
    watchableJob: (userId, jobId) => findOwnedJob(database.db, userId, jobId),
  });
  let closing = false;
  // Once closing, a request arriving on a kept-alive connection is turned away, or a client resuming
  // its event stream right here would hold the closing process open.
  const server = createServer((req, res) => {
    if (!closing) return void app(req, res);
    const refusal = new ApiError('shutting_down', 'this API process is shutting down');
    res.writeHead(refusal.status, {
      'Content-Type': 'application/json',
      Connection: 'close',
      'Retry-After': '1',
    });
    res.end(JSON.stringify(refusal));
  });
  server.on('clientError', answerClientError);
  server.on('upgrade', (req, socket, head) => {
    if (new URL(req.url ?? '/', 'http://localhost').pathname === STREAM_PATH)
      void stream.handleUpgrade(req, socket, head);
    else socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(config.http.port, config.http.host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${config.http.host}:${port}`,
    /**
     * Stops accepting, closes sockets with a close frame (1001) and ends event streams, then waits for
     * requests in progress. Clients resume by `seq` on another API process, or on this one restarted.
     */
    close: async () => {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await stream.close();
      events.hub.endAll();
      await closed;
      await Promise.all([events.stop(), keys.stop()]);
    },
  };
}
