import pg from 'pg';

export interface Listener {
  close(): Promise<void>;
}

const RECONNECT_DELAY_MS = 500;

/**
 * LISTENs on a dedicated connection (a pooled one would drop the subscription when returned) and
 * reconnects after a Postgres restart, calling `onReconnect` because notifications sent while it was
 * away are lost.
 */
export async function listenWithPg(
  url: string,
  channel: string,
  onMessage: (payload: string) => void,
  onReconnect?: () => void,
): Promise<Listener> {
  let client: pg.Client | undefined;
  let closed = false;

  const connect = async (): Promise<void> => {
    const next = new pg.Client({ connectionString: url });
    next.on('notification', (message) => {
      if (message.channel === channel && message.payload !== undefined) onMessage(message.payload);
    });
    next.on('error', () => scheduleReconnect(next));
    next.on('end', () => scheduleReconnect(next));
    await next.connect();
    await next.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    client = next;
  };

  const scheduleReconnect = (dead: pg.Client): void => {
    if (closed || client !== dead) return;
    client = undefined;
    const retry = (): void => {
      if (closed) return;
      connect().then(
        () => onReconnect?.(),
        () => setTimeout(retry, RECONNECT_DELAY_MS),
      );
    };
    setTimeout(retry, RECONNECT_DELAY_MS);
  };

  await connect();
  return {
    close: async () => {
      closed = true;
      await client?.end();
    },
  };
}
