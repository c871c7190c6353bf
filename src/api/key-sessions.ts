import type { Kysely } from 'kysely';
import type { StreamLimits } from '../config/index.js';
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

/** Why a key's new socket or event stream is refused (429 `too_many_streams`). */
export const TOO_MANY_STREAMS = 'this API key holds as many sockets and event streams open as it may';

/** One socket or event stream, as opened with one API key. */
export interface KeySession {
  /** Its key is known to be revoked: the session is being ended, and acts on nothing more. */
  readonly revoked: boolean;
  /** Asks the database whether the key is still live (a revoked one ends its sessions here and now). */
  confirmLive(): Promise<boolean>;
  /** Counts one more job subscription against the key's limit; false, and nothing counted, past it. */
  takeSubscription(): boolean;
  /** One subscription this session took has ended. */
  releaseSubscription(): void;
  /** The session ended on its own: it is no longer tracked, nor are its subscriptions. */
  release(): void;
}

interface Tracked {
  keyId: string;
  end: () => void;
  revoked: boolean;
  subscriptions: number;
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
    private readonly limits: StreamLimits,
  ) {}

  /** Also tells `knownKeys` of each revocation, and of a reconnect, after which some may have been missed. */
  static async start(
    database: DatabaseHandle,
    logger: Logger,
    knownKeys: KnownKeys,
    limits: StreamLimits,
  ): Promise<{ sessions: KeySessions; stop(): Promise<void> }> {
    const sessions = new KeySessions(database.db, logger, limits);
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

  /** Whether `keyId` holds as many sessions here as it may: a new one would be refused. */
  isFull(keyId: string): boolean {
    return (this.byKey.get(keyId)?.size ?? 0) >= this.limits.streamsPerKey;
  }

  /**
   * Tracks a session opened with `keyId`; `end` closes it, and is called at most once. Undefined, and
   * nothing tracked, when the key holds its limit of sessions already.
   */
  track(keyId: string, end: () => void): KeySession | undefined {
    if (this.isFull(keyId)) return undefined;
    const tracked: Tracked = { keyId, end, revoked: false, subscriptions: 0 };
    const set = this.byKey.get(keyId) ?? new Set<Tracked>();
    this.byKey.set(keyId, set);
    set.add(tracked);
    if (this.recentlyRevoked.has(keyId)) this.revoke(keyId);
    return {
      get revoked() {
        return tracked.revoked;
      },
      confirmLive: async () => !tracked.revoked && (await this.isLive(keyId)),
      takeSubscription: () => {
        if (this.subscriptionsOf(keyId) >= this.limits.subscriptionsPerKey) return false;
        tracked.subscriptions += 1;
        return true;
      },
      releaseSubscription: () => {
        tracked.subscriptions = Math.max(0, tracked.subscriptions - 1);
      },
      release: () => {
        if (set.delete(tracked) && set.size === 0 && this.byKey.get(keyId) === set) this.byKey.delete(keyId);
      },
    };
  }

  /** Subscriptions over all of the key's sessions here: at most `streamsPerKey` of them to add up. */
  private subscriptionsOf(keyId: string): number {
    let count = 0;
    for (const tracked of this.byKey.get(keyId) ?? []) count += tracked.subscriptions;
    return count;
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
