import type { ObjectStore } from '../storage/object-store.js';
import { inSpan } from './spans.js';
import { activeTracing } from './tracing.js';

const KEY = 'kiln.storage.key';

/**
 * The store with each operation a span (`storage.put` and so on, with the key and the bytes written);
 * the store itself when tracing is off. An operation's own requests (S3's, with their retries) are not
 * spans of their own: the HTTP instrumentation leaves outgoing requests alone.
 */
export function tracedObjectStore(store: ObjectStore): ObjectStore {
  if (!activeTracing()) return store;
  return {
    put: (key, bytes, contentType) =>
      inSpan('storage.put', { [KEY]: key, 'kiln.storage.bytes': bytes.byteLength }, () =>
        store.put(key, bytes, contentType),
      ),
    get: (key) => inSpan('storage.get', { [KEY]: key }, () => store.get(key)),
    stat: (key) => inSpan('storage.stat', { [KEY]: key }, () => store.stat(key)),
    delete: (key) => inSpan('storage.delete', { [KEY]: key }, () => store.delete(key)),
  };
}
