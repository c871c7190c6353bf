import {
  isTerminal,
  KilnApiError,
  type Job,
  type JobEventType,
  type KilnClient,
  type TerminalStatus,
  type TextUpdate,
} from '../../client/index.js';
import type { JobStore } from './job-store.js';

/*
 * One WebSocket for every job the page follows. A lost socket is opened again and each job subscribed
 * again after the last version the page has; while it keeps failing, the jobs are polled instead, as
 * the client's `watch` does for one job.
 */

/** The messages of `/v1/stream` the page reads (README, "WebSocket"). */
type ServerMessage =
  | { type: 'job'; seq: number; event: JobEventType; job: Job }
  | (TextUpdate & { id: string })
  | { type: 'subscription_ended'; id: string; status: TerminalStatus }
  | { type: 'canceling'; id: string }
  | { type: 'error'; id?: string; error: { code: string; message: string } };

/** The browser's way to pass the key (see src/api/stream-key-protocol.ts). */
const PROTOCOLS = (apiKey: string) => ['kiln', `kiln.key.${apiKey}`];
/** Closed because the key was revoked: opening again would be refused too. */
const KEY_REVOKED = 4001;
/** Closes in a row without a message, after which the jobs are polled while the socket is retried. */
const FAILURES_BEFORE_POLLING = 2;
const RETRY_MS = 1000;

export interface JobSocketListener {
  /** The socket is open (true), or lost and being retried (false). */
  onConnection(open: boolean): void;
  /** A job's cancel or subscription was refused; cancel refusals say the job had already ended. */
  onRefusal(id: string, error: { code: string; message: string }): void;
  onKeyRevoked(): void;
}

export class JobSocket {
  private socket: WebSocket | undefined;
  private readonly followed = new Set<string>();
  private failures = 0;

  constructor(
    private readonly client: KilnClient,
    private readonly apiKey: string,
    private readonly store: JobStore,
    private readonly listener: JobSocketListener,
  ) {}

  open(): void {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/stream`;
    const socket = new WebSocket(url, PROTOCOLS(this.apiKey));
    this.socket = socket;
    socket.addEventListener('open', () => {
      this.listener.onConnection(true);
      for (const id of this.followed) this.subscribe(id);
    });
    socket.addEventListener('message', (message) => {
      this.failures = 0;
      this.take(JSON.parse(String(message.data)) as ServerMessage);
    });
    socket.addEventListener('close', (closed) => {
      if (closed.code === KEY_REVOKED) return this.listener.onKeyRevoked();
      this.listener.onConnection(false);
      this.failures += 1;
      void this.pollIfFailing().finally(() => setTimeout(() => this.open(), RETRY_MS));
    });
  }

  /** Follows the job until it ends; a job the page already holds is followed after its version. */
  follow(id: string): void {
    if (this.followed.has(id)) return;
    this.followed.add(id);
    this.subscribe(id);
  }

  /** Asks for the cancel on the socket when it is open; over HTTP otherwise. */
  cancel(id: string): void {
    this.store.setCanceling(id, true);
    if (this.socket?.readyState === WebSocket.OPEN) return this.send({ type: 'cancel', id });
    this.client
      .cancel(id)
      .catch((error: unknown) =>
        this.refused(id, error instanceof KilnApiError ? error : { code: 'network', message: String(error) }),
      );
  }

  private subscribe(id: string): void {
    const since = this.store.get(id)?.job.version ?? 0;
    if (this.socket?.readyState === WebSocket.OPEN) this.send({ type: 'subscribe', id, since });
  }

  private send(message: object): void {
    this.socket?.send(JSON.stringify(message));
  }

  private take(message: ServerMessage): void {
    switch (message.type) {
      case 'job':
        return this.store.put(message.job);
      case 'text':
      case 'reset':
        return this.store.takeText(message.id, message);
      case 'subscription_ended':
        this.followed.delete(message.id);
        return;
      case 'error':
        if (message.id) this.refused(message.id, message.error);
        return;
      case 'canceling':
        // The card has said "canceling…" since the click; the job's own events end it.
        return;
    }
  }

  private refused(id: string, { code, message }: { code: string; message: string }): void {
    this.store.setCanceling(id, false);
    this.listener.onRefusal(id, { code, message });
  }

  /** Each followed job's state, and a text job's text so far, read over HTTP. */
  private async pollIfFailing(): Promise<void> {
    if (this.failures < FAILURES_BEFORE_POLLING) return;
    await Promise.all(
      [...this.followed].map(async (id) => {
        try {
          const job = await this.client.get(id);
          this.store.put(job);
          if (isTerminal(job.status)) this.followed.delete(id);
          else if (job.kind === 'text') {
            const { attempt, text } = await this.client.text(id);
            this.store.takeText(id, { type: 'text', attempt, offset: 0, delta: text });
          }
        } catch {
          // Offline, the poll fails like the socket did; both are tried again.
        }
      }),
    );
  }
}
