import { IncomingMessage, type ClientRequest, type ServerResponse } from 'node:http';
import type { Span } from '@opentelemetry/api';

/** Scrapes and probes: a trace each every few seconds would bury the requests worth reading. */
const UNTRACED_PATHS = new Set(['/metrics', '/healthz']);

export function untracedPath(url: string | undefined): boolean {
  return UNTRACED_PATHS.has(new URL(url ?? '/', 'http://localhost').pathname);
}

/** What Express leaves on a request it routed. */
interface RoutedRequest extends IncomingMessage {
  baseUrl?: string;
  originalUrl?: string;
  route?: { path?: unknown };
}

function segments(path: string): number {
  return path.split('/').filter((part) => part !== '').length;
}

/**
 * The route template that answered (`/v1/generations/:id`), from Express's `baseUrl` and `route`. An
 * error passed on out of a router restores `baseUrl` before the error middleware answers; a template
 * with fewer segments than the path is that, and is not a name for the request.
 */
function routeOf(request: RoutedRequest): string | undefined {
  const { route, baseUrl = '', originalUrl } = request;
  if (typeof route?.path !== 'string') return undefined;
  const template = route.path === '/' && baseUrl !== '' ? baseUrl : `${baseUrl}${route.path}`;
  const path = new URL(originalUrl ?? request.url ?? '/', 'http://localhost').pathname;
  return segments(template) === segments(path) ? template : undefined;
}

/**
 * The HTTP instrumentation names a server span by its method alone (it knows nothing of Express, and
 * the Express instrumentation of this OpenTelemetry line stops at Express 4): the route makes it
 * `POST /v1/generations`. Called as the response finishes, when Express has routed the request.
 */
export function nameServerSpanByRoute(
  span: Span,
  request: ClientRequest | IncomingMessage,
  _response: IncomingMessage | ServerResponse,
): void {
  if (!(request instanceof IncomingMessage)) return;
  const route = routeOf(request);
  if (route === undefined) return;
  span.setAttribute('http.route', route);
  span.updateName(`${request.method} ${route}`);
}
