import type { Express, RequestHandler } from 'express';
import { ApiError } from './api-error.js';

/** What `Router#listRoutes` (router 2.3, Express 5's router) answers; @types/express does not have it yet. */
interface ListedRoute {
  path: string | RegExp;
  /** The route's methods, `HEAD` added for `GET`; absent for a mounted router. */
  methods?: string[];
  router?: ListableRouter;
}

interface ListableRouter {
  listRoutes(): ListedRoute[];
}

/** A full route template, split into segments (a `:name` one matches any), and the methods it takes. */
interface RouteMethods {
  segments: string[];
  methods: string[];
}

const segmentsOf = (path: string): string[] => path.split('/').filter((segment) => segment !== '');

/**
 * Every route of `router` and the routers mounted on it, with full paths. Only literal and `:name`
 * segments are understood: a route using more of path-to-regexp's syntax stops the process at start
 * rather than be answered 405 wrongly.
 */
function listRoutes(router: ListableRouter, prefix = ''): RouteMethods[] {
  return router.listRoutes().flatMap(({ path, methods, router: mounted }) => {
    if (typeof path !== 'string' || /[*?{}()]/.test(path)) {
      throw new Error(`route ${String(path)} is more than literal and :name segments`);
    }
    const full = `${prefix}/${path}`;
    if (mounted) return listRoutes(mounted, full);
    const named = (methods ?? []).filter((method) => method !== '*');
    return [{ segments: segmentsOf(full), methods: named }];
  });
}

// Express matches paths case-insensitively, and with or without a trailing slash.
function matches(template: string[], path: string[]): boolean {
  return (
    template.length === path.length &&
    template.every(
      (segment, i) => segment.startsWith(':') || segment.toLowerCase() === path[i]?.toLowerCase(),
    )
  );
}

/**
 * For a request no route took: if its path is a route's with another method, `405 method_not_allowed`
 * with `Allow`; otherwise on to the 404. Mounted after every route, so it reads the whole app.
 */
export function methodNotAllowed(app: Express): RequestHandler {
  const routes = listRoutes(app.router as unknown as ListableRouter);
  return (req, res, next) => {
    const path = segmentsOf(req.path);
    const allowed = new Set(routes.flatMap((route) => (matches(route.segments, path) ? route.methods : [])));
    if (allowed.size === 0) return next();
    const allow = [...allowed].sort().join(', ');
    res.set('Allow', allow);
    next(
      new ApiError('method_not_allowed', `${req.method} is not allowed on ${req.path}; allowed: ${allow}`),
    );
  };
}
