import { circuitOpenForMs } from '../db/circuit-repository.js';
import type { ActivityDependencies } from './dependencies.js';

export function createProviderCircuitActivities({ db }: ActivityDependencies) {
  return {
    /**
     * How long `provider`'s circuit stays open from now, while it cools down; null when it is not. Asked
     * by a job that could move on to a fallback before it queues a call on the provider's task queue,
     * which hands calls out only at the provider's rate, whatever the circuit says. A read only.
     */
    async providerCircuitOpenForMs(provider: string): Promise<number | null> {
      return (await circuitOpenForMs(db, provider)) ?? null;
    },
  };
}
