import type { Kysely } from 'kysely';
import type { DatabaseHandle } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { API_KEY_REVOCATIONS_CHANNEL, liveApiKeyIds } from '../db/user-repository.js';
import type { Logger } from '../logger.js';
import type { KnownKeys } from './known-keys.js';

/** A backstop only: a revocation is heard by NOTIFY, or by the recheck after a LISTEN reconnect. */
const RECHECK_INTERVAL_MS = 30_000;
/**
 * A session authenticated just before a revocation committed can be registered just after it was heard;
 * remembering revoked keys this long ends such a session at once rather than at the next recheck.
 */
const REMEMBER_REVOKED_MS = 60_000;

/** One socket or event stream, as opened with one API key. */
export interface KeySession {
  /** Its key is known to be revoked: the session is being ended, and acts on nothing more. */
  readonly revoked: boolean;
  /** Asks the database whether the key is still live (a revoked one ends its sessions here and now). */
  confirmLive(): Promise<boolean>;
  /** The session ended on its own: it is no longer tracked. */
  release(): void;
}

interface Tracked {
  keyId: string;
  end: () => void;
  revoked: boolean;
}

/**
 * Every open session of this API process by the key that opened it, ended when that key is revoked: told
 * by NOTIFY from whichever process revoked it, checked again after a LISTEN reconnect (a NOTIFY sent
 * meanwhile is lost) and on a slow interval, each time in one query for all open sessions.
 */
export class KeySessions {
  private readonly byKey = new Map<string, Set<Tracked>>();
  private readonly recentlyRevoked = new Map<string, number>();

  private constructor(
    private readonly db: Kysely<Database>,
    private readonly logger: Logger,
  ) {}

  /** Also tells `knownKeys` of each revocation, and of a reconnect, after which some may have been missed. */
  static async start(
    database: DatabaseHandle,
    logger: Logger,
    knownKeys: KnownKeys,
  ): Promise<{ sessions: KeySessions; stop(): Promise<void> }> {
    const sessions = new KeySessions(database.db, logger);
    const listener = await database.listen(
      API_KEY_REVOCATIONS_CHANNEL,
      (keyId) => {
        knownKeys.forget(keyId);
        sessions.revoke(keyId);
      },
      () => {
        knownKeys.forgetAll();
        sessions.recheckInBackground();
      },
    );
    const timer = setInterval(() => sessions.recheckInBackground(), RECHECK_INTERVAL_MS);
    timer.unref();
    return {
      sessions,
      stop: async () => {
        clearInterval(timer);
        await listener.close();
      },
    };
  }

  /** Tracks a session opened with `keyId`; `end` closes it, and is called at most once. */
  track(keyId: string, end: () => void): KeySession {
    const tracked: Tracked = { keyId, end, revoked: false };
    const set = this.byKey.get(keyId) ?? new Set<Tracked>();
    this.byKey.set(keyId, set);
    set.add(tracked);
    if (this.recentlyRevoked.has(keyId)) this.revoke(keyId);
    return {
      get revoked() {
        return tracked.revoked;
      },
      confirmLive: async () => !tracked.revoked && (await this.isLive(keyId)),
      release: () => {
        if (set.delete(tracked) && set.size === 0 && this.byKey.get(keyId) === set) this.byKey.delete(keyId);
      },
    };
  }

  private async isLive(keyId: string): Promise<boolean> {
    const live = (await liveApiKeyIds(this.db, [keyId])).has(keyId);
    if (!live) this.revoke(keyId);
    return live;
  }

  private revoke(keyId: string): void {
    this.recentlyRevoked.set(keyId, Date.now());
    const set = this.byKey.get(keyId);
    this.byKey.delete(keyId);
    for (const tracked of set ?? []) {
      tracked.revoked = true;
      tracked.end();
    }
  }

  private async recheck(): Promise<void> {
    const forgetBefore = Date.now() - REMEMBER_REVOKED_MS;
    for (const [keyId, at] of this.recentlyRevoked) if (at < forgetBefore) this.recentlyRevoked.delete(keyId);
    const keyIds = [...this.byKey.keys()];
    if (keyIds.length === 0) return;
    const live = await liveApiKeyIds(this.db, keyIds);
    for (const keyId of keyIds) if (!live.has(keyId)) this.revoke(keyId);
  }

  private recheckInBackground(): void {
    this.recheck().catch((error: unknown) =>
      this.logger.warn({ err: error }, 'rechecking the API keys of open sessions failed'),
    );
  }
}
