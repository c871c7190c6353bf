import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { PayloadKey } from '../config/index.js';

const ProtoPayload = proto.temporal.api.common.v1.Payload;

/** `encoding` of a payload this codec encrypted; anything else is passed through as it is. */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
/** Metadata naming the key a payload was encrypted with, so that rotated-out keys still decrypt. */
export const KEY_ID_METADATA = 'encryption-key-id';

const ALGORITHM = 'aes-256-gcm';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A payload the codec cannot decrypt: its key is not configured, or its bytes were altered. */
export class PayloadDecryptionError extends Error {
  override readonly name = 'PayloadDecryptionError';

  constructor(
    readonly keyId: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

function metadataText(payload: Payload, key: string): string | undefined {
  const value = payload.metadata?.[key];
  return value ? fromUtf8.decode(value) : undefined;
}

/**
 * Encrypts each payload whole (its metadata and data, protobuf-encoded) into a new payload of
 * encoding `binary/encrypted` whose data is iv (12 bytes) + ciphertext + GCM tag (16 bytes). Encrypts
 * with the first key; decrypts with whichever key the payload names. Payloads of any other encoding
 * decode unchanged: histories recorded before encryption was switched on still replay.
 */
export class PayloadEncryptionCodec implements PayloadCodec {
  private readonly current: PayloadKey;
  private readonly keys: ReadonlyMap<string, Uint8Array>;

  constructor(keys: readonly PayloadKey[]) {
    const [current] = keys;
    if (!current) throw new Error('PayloadEncryptionCodec needs at least one key');
    for (const { id, key } of keys) {
      if (key.length !== KEY_BYTES) throw new Error(`payload key ${id} is not ${KEY_BYTES} bytes`);
    }
    this.current = current;
    this.keys = new Map(keys.map(({ id, key }) => [id, key]));
  }

  // A failure rejects, as the SDK expects of a codec, rather than throwing from the call.
  encode(payloads: Payload[]): Promise<Payload[]> {
    return new Promise((resolve) => resolve(payloads.map((payload) => this.encrypt(payload))));
  }

  decode(payloads: Payload[]): Promise<Payload[]> {
    return new Promise((resolve) =>
      resolve(
        payloads.map((payload) =>
          metadataText(payload, 'encoding') === ENCRYPTED_ENCODING ? this.decrypt(payload) : payload,
        ),
      ),
    );
  }

  private encrypt(payload: Payload): Payload {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv(ALGORITHM, this.current.key, iv);
    const plaintext = ProtoPayload.encode(payload).finish();
    const data = Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return {
      metadata: {
        encoding: utf8.encode(ENCRYPTED_ENCODING),
        [KEY_ID_METADATA]: utf8.encode(this.current.id),
      },
      data,
    };
  }

  private decrypt(payload: Payload): Payload {
    const keyId = metadataText(payload, KEY_ID_METADATA);
    const key = keyId === undefined ? undefined : this.keys.get(keyId);
    if (!key) throw new PayloadDecryptionError(keyId, `no payload key with id ${JSON.stringify(keyId)}`);
    const data = payload.data ?? new Uint8Array();
    if (data.length < IV_BYTES + TAG_BYTES) {
      throw new PayloadDecryptionError(keyId, 'encrypted payload is too short');
    }
    const decipher = createDecipheriv(ALGORITHM, key, data.subarray(0, IV_BYTES));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    try {
      const plaintext = Buffer.concat([
        decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)),
        decipher.final(),
      ]);
      return ProtoPayload.decode(plaintext);
    } catch {
      // GCM's tag check: a wrong key under a reused id, or altered bytes.
      throw new PayloadDecryptionError(keyId, `payload does not decrypt with key ${keyId}`);
    }
  }
}
