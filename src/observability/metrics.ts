import { Counter, Registry } from 'prom-client';

/** This process's metrics; the API serves them at `/metrics`. */
export const metricsRegistry = new Registry();

/** Job-table writes the state machine refused: each one is a bug or a race worth looking at. */
export const illegalTransitions = new Counter({
  name: 'kiln_illegal_transitions_total',
  help: 'Job-table transitions refused by the state machine',
  labelNames: ['to'] as const,
  registers: [metricsRegistry],
});

/** Calls a provider refused for our credentials: nothing succeeds until an operator fixes the key. */
export const providerAuthFailures = new Counter({
  name: 'kiln_provider_auth_failures_total',
  help: 'Provider calls rejected for bad credentials',
  labelNames: ['provider'] as const,
  registers: [metricsRegistry],
});

/** Times a provider's shared circuit breaker opened. */
export const circuitOpenings = new Counter({
  name: 'kiln_circuit_opened_total',
  help: 'Times a provider circuit breaker opened',
  labelNames: ['provider'] as const,
  registers: [metricsRegistry],
});
