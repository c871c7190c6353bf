import { defineSearchAttributeKey, type SearchAttributePair } from '@temporalio/common';
import type { JobStatus } from '../jobs/job.js';

/*
 * The custom search attributes of a job's workflow, shared by the client that starts it, the workflow that
 * updates it and the servers that must register them. Keyword: matched exactly, never tokenized. Never
 * put prompt text here: search attributes are stored unencrypted and shown to every operator.
 */

/** The user who submitted the job. */
export const KILN_USER = defineSearchAttributeKey('KilnUser', 'KEYWORD');
/** The provider the job calls. */
export const KILN_PROVIDER = defineSearchAttributeKey('KilnProvider', 'KEYWORD');
/** The job's status as the workflow last saw it. */
export const KILN_STATUS = defineSearchAttributeKey('KilnStatus', 'KEYWORD');

/** Every one of them, for `--search-attribute Name=Keyword` and `temporal operator search-attribute create`. */
export const KILN_SEARCH_ATTRIBUTES = [KILN_USER, KILN_PROVIDER, KILN_STATUS] as const;

/** What a job's workflow starts with: who, where, and `queued`. */
export function jobSearchAttributes(job: {
  userId: string;
  provider: string;
  status: JobStatus;
}): SearchAttributePair[] {
  return [
    { key: KILN_USER, value: job.userId },
    { key: KILN_PROVIDER, value: job.provider },
    { key: KILN_STATUS, value: job.status },
  ];
}
