import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { Router } from 'express';
import { pageHtml } from './page-html.js';

// The same from src/web and dist/web: the browser code is always bundled from its TypeScript source.
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BROWSER_ENTRY = path.join(REPO_ROOT, 'src/web/browser/app.ts');

async function bundle(): Promise<string> {
  const result = await build({
    entryPoints: [BROWSER_ENTRY],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
  });
  return result.outputFiles[0]!.text;
}

/**
 * `/`: the web page, and `/app.js`: its script, bundled once on first request (about 100 ms). Its jobs
 * link to `temporalWorkflowsUrl` + their id, when there is a Web UI to link to.
 */
export function webPageRoutes(temporalWorkflowsUrl: string | undefined): Router {
  const router = Router();
  const html = pageHtml(temporalWorkflowsUrl);
  let script: Promise<string> | undefined;
  router.get('/', (_req, res) => {
    res
      .type('html')
      .set({
        'Cache-Control': 'no-cache',
        // Results are shown from blob: URLs; the only script is our own bundle.
        'Content-Security-Policy':
          "default-src 'self'; img-src 'self' blob:; style-src 'self' 'unsafe-inline'; object-src 'none'",
      })
      .send(html);
  });
  router.get('/app.js', async (_req, res) => {
    // A failed build is not kept: the next request tries again.
    script ??= bundle().catch((error: unknown) => {
      script = undefined;
      throw error;
    });
    res
      .type('js')
      .set('Cache-Control', 'no-cache')
      .send(await script);
  });
  return router;
}
