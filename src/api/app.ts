import express, { type Express } from 'express';
import type { Logger } from '../logger.js';
import { metricsRegistry } from '../observability/metrics.js';
import { errorMiddleware, notFoundRoute } from './api-error.js';
import { generationsRoutes, type GenerationsRouteDependencies } from './generations-routes.js';
import { meRoute } from './me-route.js';
import { webPageRoutes } from '../web/web-page.js';
import { OPENAPI_PATH, openApiRoute } from './openapi.js';

export interface AppDependencies extends GenerationsRouteDependencies {
  logger: Logger;
}

export function createApp(deps: AppDependencies): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metricsRegistry.contentType).send(await metricsRegistry.metrics());
  });
  app.get(OPENAPI_PATH, openApiRoute);
  app.use('/v1/generations', generationsRoutes(deps));
  app.use('/v1/me', meRoute(deps.db));
  app.use(webPageRoutes());
  app.use(notFoundRoute);
  app.use(errorMiddleware(deps.logger));
  return app;
}
