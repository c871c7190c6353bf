import express, { type Express } from 'express';
import type { Config } from '../config/index.js';
import type { Logger } from '../logger.js';
import { metricsAccess, METRICS_TOKEN_REQUIRED } from '../observability/metrics-access.js';
import { renderMetrics } from '../observability/metrics-text.js';
import { ADMIN_PATH, adminRoutes, type AdminRouteDependencies } from './admin-routes.js';
import { ApiError, errorMiddleware, notFoundRoute } from './api-error.js';
import { CODEC_PATH, codecRoutes } from './codec-routes.js';
import { generationsRoutes, type GenerationsRouteDependencies } from './generations-routes.js';
import { meRoute } from './me-route.js';
import { providersRoute } from './providers-route.js';
import { methodNotAllowed } from './method-not-allowed.js';
import { WEBHOOK_SECRET_PATH, webhookSecretRoutes } from './webhook-secret-routes.js';
import { webPageRoutes } from '../web/web-page.js';
import { OPENAPI_PATH, openApiRoute } from './openapi.js';

export interface AppDependencies extends GenerationsRouteDependencies {
  logger: Logger;
  config: GenerationsRouteDependencies['config'] &
    AdminRouteDependencies['config'] &
    Pick<Config, 'adminApiKey' | 'codecServer' | 'observability' | 'temporal'>;
}

/**
 * Where the page links a job in the Temporal Web UI: the first UI allowed to call the codec is the one
 * operators use, and a workflow's id is its job's id.
 */
function temporalWorkflowsUrl(config: Pick<Config, 'codecServer' | 'temporal'>): string | undefined {
  const [ui] = config.codecServer.allowedOrigins;
  return ui && `${ui}/namespaces/${encodeURIComponent(config.temporal.namespace)}/workflows/`;
}

export function createApp(deps: AppDependencies): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  const mayScrape = metricsAccess(deps.config.observability.metricsToken);
  app.get('/metrics', async (req, res) => {
    if (!mayScrape(req.headers.authorization)) {
      res.set('WWW-Authenticate', 'Bearer');
      throw new ApiError('unauthorized', METRICS_TOKEN_REQUIRED);
    }
    const { contentType, body } = await renderMetrics();
    res.type(contentType).send(body);
  });
  const adminApi = Boolean(deps.config.adminApiKey);
  const { defaultProvider } = deps.config.providers;
  const metricsToken = deps.config.observability.metricsToken !== undefined;
  app.get(OPENAPI_PATH, openApiRoute({ providers: deps.providers, defaultProvider, adminApi, metricsToken }));
  app.use('/v1/generations', generationsRoutes(deps));
  app.use('/v1/me', meRoute(deps.db));
  app.use('/v1/providers', providersRoute(deps.db, deps.providers, defaultProvider, deps.costs));
  app.use(WEBHOOK_SECRET_PATH, webhookSecretRoutes(deps.db));
  // Without an admin key there is no operator API at all: its paths answer 404 like any unknown one.
  if (deps.config.adminApiKey) app.use(ADMIN_PATH, adminRoutes(deps, deps.config.adminApiKey));
  // The Temporal Web UI's codec server decrypts any job's prompt: behind the same key, or absent.
  if (deps.config.adminApiKey) app.use(CODEC_PATH, codecRoutes(deps, deps.config.adminApiKey));
  app.use(webPageRoutes(temporalWorkflowsUrl(deps.config)));
  app.use(methodNotAllowed(app));
  app.use(notFoundRoute);
  app.use(errorMiddleware(deps.logger));
  return app;
}
