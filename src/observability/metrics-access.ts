import { bearerToken } from '../auth/api-key.js';
import { secretMatcher } from '../auth/shared-secret.js';

/** The refusal both processes' `/metrics` answer without the token, as the API's error body says it. */
export const METRICS_TOKEN_REQUIRED = 'the metrics token is required (Authorization: Bearer …)';

/**
 * Whether a request's `Authorization` header may read `/metrics`: any, when no token is configured;
 * otherwise only `Bearer <token>`, as Prometheus sends it from a scrape config's `authorization`.
 */
export function metricsAccess(token: string | undefined): (authorization: string | undefined) => boolean {
  if (token === undefined) return () => true;
  const matches = secretMatcher(token);
  return (authorization) => matches(bearerToken(authorization));
}
