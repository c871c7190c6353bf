import { Client, Connection } from '@temporalio/client';
import type { Config } from './config.js';

export const DEFAULT_TEMPORAL_ADDRESS = 'localhost:7233';

export async function connectTemporalClient(config: Config['temporal']): Promise<Client> {
  const connection = await Connection.connect({ address: config.address ?? DEFAULT_TEMPORAL_ADDRESS });
  return new Client({ connection, namespace: config.namespace });
}
