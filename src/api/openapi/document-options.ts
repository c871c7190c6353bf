import type { ProviderRegistry } from '../../providers/provider-registry.js';

/** What one deployment's document depends on; read once, at start. */
export interface OpenApiOptions {
  /** The providers this deployment calls: the submit body lists their models and sizes. */
  providers: ProviderRegistry;
  /** The provider a submission naming none goes to. */
  defaultProvider: string;
  /** Whether the operator API is served (ADMIN_API_KEY is set); its paths are listed only then. */
  adminApi: boolean;
  /** Whether `/metrics` asks for METRICS_TOKEN. */
  metricsToken: boolean;
}
