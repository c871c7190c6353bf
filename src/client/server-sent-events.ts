/** One Server-Sent Event as the stream carried it. */
export interface ServerSentEvent {
  id?: string;
  event: string;
  data: string;
}

/**
 * Splits a `text/event-stream` body into events, per the HTML spec's parsing rules (comments, `field:value`
 * with one optional space, multi-line data). Runs in browsers and Node alike: it needs only web streams.
 */
export async function* readServerSentEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<ServerSentEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let event: ServerSentEvent = { event: 'message', data: '' };
  let hasData = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
        if (line === '') {
          if (hasData) yield { ...event, data: event.data.replace(/\n$/, '') };
          event = { event: 'message', data: '' };
          hasData = false;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'data') {
          event.data += `${text}\n`;
          hasData = true;
        } else if (field === 'event') event.event = text;
        else if (field === 'id') event.id = text;
      }
    }
  } finally {
    // A reader that stops early (a caller breaking out) must close the connection, not leak it.
    await reader.cancel().catch(() => undefined);
  }
}
