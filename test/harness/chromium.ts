import chromiumBuild from '@sparticuz/chromium';
import { chromium, type Browser } from 'playwright-core';

/**
 * Chromium from npm's `@sparticuz/chromium` (a headless build that carries its own libraries and
 * fonts, unpacked on first use), driven by playwright-core: no browser download and no system
 * package. `KILN_TEST_CHROMIUM` names another executable instead.
 */
export async function launchChromium(): Promise<Browser> {
  const executablePath = process.env.KILN_TEST_CHROMIUM ?? (await chromiumBuild.executablePath());
  // --no-sandbox: tests run as root on CI, which chromium's sandbox refuses.
  return chromium.launch({ executablePath, args: ['--no-sandbox'] });
}
