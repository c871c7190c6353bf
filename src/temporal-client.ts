import { Client, Connection } from '@temporalio/client';
import type { DataConverter, LoadedDataConverter, Payload } from '@temporalio/common';
import type { Config } from './config/index.js';
import { PayloadEncryptionCodec } from './encryption/payload-codec.js';
import type { Logger } from './logger.js';
import { tracingClientInterceptors } from './observability/temporal-tracing.js';

/** Where `npm run services` runs the dev server: 127.0.0.1, which `localhost` may not resolve to first. */
export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';

/**
 * The one data converter of every Temporal client, worker and replay: payloads encrypted with the
 * configured keys, or left as they are when there are none.
 */
export function kilnDataConverter(config: Pick<Config['temporal'], 'payloadKeys'>): DataConverter {
  return {
    payloadCodecs: config.payloadKeys.length > 0 ? [new PayloadEncryptionCodec(config.payloadKeys)] : [],
  };
}

export async function connectTemporalClient(config: Config['temporal']): Promise<Client> {
  const connection = await Connection.connect({ address: config.address ?? DEFAULT_TEMPORAL_ADDRESS });
  return new Client({
    connection,
    namespace: config.namespace,
    dataConverter: kilnDataConverter(config),
    interceptors: tracingClientInterceptors(),
  });
}

/**
 * Payloads as the payload converter reads them: run back through the codecs (last first, the reverse
 * of encoding). For payloads read straight from a history, which the client hands over still encoded.
 */
export async function decodePayloads(
  converter: LoadedDataConverter,
  payloads: readonly Payload[] | null | undefined,
): Promise<Payload[]> {
  let decoded = [...(payloads ?? [])];
  for (const codec of [...converter.payloadCodecs].reverse()) decoded = await codec.decode(decoded);
  return decoded;
}

/** Payloads as the server stores them: through each codec, first first. For the codec endpoint. */
export async function encodePayloads(
  converter: LoadedDataConverter,
  payloads: readonly Payload[],
): Promise<Payload[]> {
  let encoded = [...payloads];
  for (const codec of converter.payloadCodecs) encoded = await codec.encode(encoded);
  return encoded;
}

/** The separate API and worker processes say at start when prompts will reach Temporal in plaintext. */
export function warnIfPayloadsInPlaintext(config: Config['temporal'], logger: Logger): void {
  if (config.payloadKeys.length > 0) return;
  logger.warn(
    'PAYLOAD_ENCRYPTION_KEYS is unset: workflow inputs (prompts included) are stored in plaintext in Temporal',
  );
}
