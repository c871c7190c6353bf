export { ConfigError, loadConfig, type Config } from './load-config.js';
export type { FallbackEntry, Plan, ProviderLimit, TokenPrice, TokenPriceTable } from './schema.js';
export {
  DEFAULT_ANTHROPIC_TEXT_MODELS,
  DEFAULT_OPENAI_TEXT_MODELS,
  type CircuitPolicy,
  type FailureRatePolicy,
  type ObjectStoreConfig,
  type PayloadKey,
  type ProviderRetryPolicy,
  type ResultCachePolicy,
  type RetentionPolicy,
  type S3ObjectStoreOptions,
  type StreamLimits,
  type WebhookRetryPolicy,
} from './policies.js';
