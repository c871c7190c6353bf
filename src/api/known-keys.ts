import type { Kysely } from 'kysely';
import { hashApiKey } from '../auth/api-key.js';
import type { Database } from '../db/schema.js';
import { findCallerByApiKey, type Caller } from '../db/user-repository.js';

/** Enough for every key of a busy deployment; past it the oldest is looked up again when next used. */
const MAX_KEYS = 10_000;

/** A key seen live, with its SHA-256 (what its submit token and liveness are checked by). */
export interface KnownKey {
  caller: Caller;
  keySha256: string;
}

/**
 * The users of API keys this process has seen live, so that a submission does not look its key up:
 * the statement that records it checks the key is still live, and refuses it otherwise. A key's user
 * never changes; a revocation heard by NOTIFY forgets the key at once, and a LISTEN reconnect (after
 * which revocations may have been missed) forgets all of them.
 */
export class KnownKeys {
  private readonly byHash = new Map<string, Caller>();
  /** Counts what was forgotten, so that a lookup in flight across a revocation is not kept. */
  private forgets = 0;

  constructor(private readonly db: Kysely<Database>) {}

  async find(key: string): Promise<KnownKey | undefined> {
    const keySha256 = hashApiKey(key);
    const known = this.byHash.get(keySha256);
    if (known) return { caller: known, keySha256 };
    const forgetsBefore = this.forgets;
    const caller = await findCallerByApiKey(this.db, key);
    if (!caller) return undefined;
    if (this.forgets === forgetsBefore) this.remember(keySha256, caller);
    return { caller, keySha256 };
  }

  /** The key was revoked: it is looked up again (and refused) when next presented. */
  forget(keyId: string): void {
    this.forgets++;
    for (const [keySha256, caller] of this.byHash) if (caller.keyId === keyId) this.byHash.delete(keySha256);
  }

  forgetAll(): void {
    this.forgets++;
    this.byHash.clear();
  }

  private remember(keySha256: string, caller: Caller): void {
    if (this.byHash.size >= MAX_KEYS) this.byHash.delete(this.byHash.keys().next().value!);
    this.byHash.set(keySha256, caller);
  }
}
