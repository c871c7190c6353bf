import { errorOf } from './errors.js';

/** How the client reaches the API: every call authenticated, every answer that is not ok thrown. */
export interface Transport {
  /** The answer, once it is ok; otherwise a `KilnApiError` is thrown. */
  call(path: string, init?: RequestInit): Promise<Response>;
  json<T>(path: string, init?: RequestInit): Promise<T>;
}

export function createTransport(baseUrl: string, apiKey: string, fetchImpl: typeof fetch): Transport {
  const base = baseUrl.replace(/\/$/, '');
  async function call(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${apiKey}`);
    const response = await fetchImpl(`${base}${path}`, { ...init, headers });
    if (!response.ok) throw await errorOf(response);
    return response;
  }
  return {
    call,
    json: async <T>(path: string, init?: RequestInit) => (await (await call(path, init)).json()) as T,
  };
}

export const jobPath = (id: string) => `/v1/generations/${encodeURIComponent(id)}`;
