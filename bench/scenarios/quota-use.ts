import { setTimeout as sleep } from 'node:timers/promises';
import { allWithin, JobWatcher, submitMany } from '../lib/jobs.js';
import { openaiBody, startOpenAIBench } from '../lib/openai-setup.js';
import { repeat, type RunSettings, type Scenario } from '../lib/scenario.js';

const RPM = 240;
const BURST = 4;
const CALL_MS = 200;
const jobsFor = (quick: boolean) => (quick ? 30 : 80);

/** N jobs against a provider that enforces R requests a minute: how close Kiln comes to R, and its 429s. */
export const quotaUse: Scenario = {
  name: 'quota',
  title: 'quota use',
  conditions: (quick) =>
    `${jobsFor(quick)} jobs submitted at once against the OpenAI fake enforcing ${RPM}/min (bucket of ` +
    `${BURST}), calls taking ${CALL_MS} ms; PROVIDER_LIMITS rpm ${RPM}; ideal = the bucket's own pace ` +
    '((N − burst) ÷ R from the first call); use = ideal ÷ (last call − first call); 1 worker process',
  targets: [
    { figure: 'quota_use_pct', label: '≥ 95 % of ideal', op: '>=', value: 95 },
    { figure: 'answered_429_pct', label: '≤ 1 % of calls answered 429', op: '<=', value: 1 },
  ],
  async run(settings: RunSettings) {
    const bench = await startOpenAIBench({
      env: { PROVIDER_LIMITS: JSON.stringify({ openai: { rpm: RPM, concurrency: 8 } }) },
      provider: {
        behaviour: { kind: 'ok', delayMs: CALL_MS },
        requestLimit: { perMinute: RPM, burst: BURST },
      },
    });
    const user = bench.users[0]!;
    const watcher = await JobWatcher.open(user, 4);
    try {
      return await repeat(settings, async (run) => {
        // The provider's bucket refills while idle: every run starts from a full one.
        await sleep(((BURST / RPM) * 60_000) | 0);
        const callsBefore = bench.provider.requests.length;
        const refusedBefore = bench.provider.rateLimitedResponses();
        const jobs = jobsFor(settings.quick);
        // When the first 429 came, counted from the first call: at the start, it is a dispatch burst.
        let first429At = Number.NaN;
        const sampler = setInterval(() => {
          if (Number.isNaN(first429At) && bench.provider.rateLimitedResponses() > refusedBefore) {
            first429At = Date.now() - (bench.provider.arrivals[callsBefore] ?? Date.now());
          }
        }, 5);
        const submitted = await submitMany(user, jobs, 20, (i) => openaiBody(`quota ${run} ${i}`));
        await allWithin(
          submitted.map((s) => watcher.watch(s.id).done),
          (jobs / RPM) * 60_000 * 2 + 30_000,
          'quota jobs',
        );
        clearInterval(sampler);
        const calls = bench.provider.requests.length - callsBefore;
        const refused = bench.provider.rateLimitedResponses() - refusedBefore;
        const accepted = bench.provider.arrivals.slice(callsBefore).sort((a, b) => a - b);
        const elapsedMs = accepted.at(-1)! - accepted[0]!;
        const idealMs = ((jobs - BURST) / RPM) * 60_000;
        return {
          quota_use_pct: (idealMs / elapsedMs) * 100,
          answered_429_pct: (refused / calls) * 100,
          calls,
          answered_429: refused,
          elapsed_ms: elapsedMs,
          ideal_ms: idealMs,
          first_429_after_ms: first429At,
        };
      });
    } finally {
      watcher.close();
      await bench.stop();
    }
  },
};
