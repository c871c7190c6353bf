import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * What the file behind an image URL does when fetched: `png` serves the image; `missing` answers 404, as
 * an expired link does; `oversized` streams far more bytes than any PNG of the size, with no
 * Content-Length; `hang` never answers.
 */
export type ImageFile = 'png' | 'missing' | 'oversized' | 'hang';

const PATH = /^\/files\/([0-9a-f-]{36})\.png$/;
const OVERSIZED_CHUNK = Buffer.alloc(1024 * 1024);
const OVERSIZED_CHUNKS = 16;

/** The files an OpenAI-compatible server links to from `data[].url`, served by the fake itself. */
export function imageFiles() {
  const files = new Map<string, { kind: ImageFile; png: Buffer }>();
  let fetched = 0;

  function sendOversized(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'image/png' });
    let sent = 0;
    const more = () => {
      while (sent < OVERSIZED_CHUNKS && !res.destroyed) {
        sent += 1;
        if (!res.write(OVERSIZED_CHUNK)) return void res.once('drain', more);
      }
      res.end();
    };
    more();
  }

  return {
    /** Keeps `png` as `kind` says; returns the path it is served at. */
    add(kind: ImageFile, png: Buffer): string {
      const id = randomUUID();
      files.set(id, { kind, png });
      return `/files/${id}.png`;
    },
    /** Answers a GET of a file's path; false for any other request. */
    handle(req: IncomingMessage, res: ServerResponse): boolean {
      const id = req.method === 'GET' ? PATH.exec(req.url ?? '')?.[1] : undefined;
      if (id === undefined) return false;
      fetched += 1;
      const file = files.get(id);
      if (!file || file.kind === 'missing') res.writeHead(404).end();
      else if (file.kind === 'png') res.writeHead(200, { 'content-type': 'image/png' }).end(file.png);
      else if (file.kind === 'oversized') sendOversized(res);
      return true;
    },
    /** GETs of file paths received so far. */
    fetched: () => fetched,
  };
}
