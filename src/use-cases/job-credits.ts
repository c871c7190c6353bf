import type { Kysely } from 'kysely';
import { creditsOfJobs } from '../db/credit-repository.js';
import type { Database } from '../db/schema.js';
import type { Job } from '../jobs/job.js';

/** The jobs as a GET shows them: each with its credits from the ledger, when it reserved any. */
export async function withCredits(db: Kysely<Database>, jobs: Job[]): Promise<Job[]> {
  const credits = await creditsOfJobs(
    db,
    jobs.map((job) => job.id),
  );
  return jobs.map((job) => {
    const own = credits.get(job.id);
    return own ? { ...job, credits: own } : job;
  });
}
