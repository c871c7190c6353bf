import { z } from 'zod';
import { FailureCode } from '../jobs/job.js';
import type { BatchLineOutcome } from './batch-provider.js';
import { classifyOpenAIStatus } from './classify-openai-error.js';

/** A line of a batch's output or error file, as OpenAI writes both. */
export const openAIBatchLineSchema = z.object({
  custom_id: z.string(),
  response: z
    .object({ status_code: z.number().int(), request_id: z.string().nullish(), body: z.unknown() })
    .nullish(),
  error: z.object({ code: z.string().nullish(), message: z.string().nullish() }).nullish(),
});
export type OpenAIBatchLine = z.infer<typeof openAIBatchLineSchema>;

/** The parts of a chat completion a batch line's outcome is read from. */
const completionSchema = z.object({
  choices: z
    .array(
      z.object({ finish_reason: z.string().nullish(), message: z.object({ content: z.string().nullish() }) }),
    )
    .min(1),
  usage: z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int() }),
});

const errorBodySchema = z.object({
  error: z.object({ message: z.string(), code: z.string().nullish(), type: z.string().nullish() }),
});

/** Lines the batch never ran: OpenAI writes them to the error file with one of these codes. */
const UNRUN_CODES: Readonly<Record<string, 'expired' | 'cancelled'>> = {
  batch_expired: 'expired',
  batch_cancelled: 'cancelled',
};

function failed(jobId: string, code: FailureCode, message: string, retryable: boolean): BatchLineOutcome {
  return { jobId, outcome: 'failed', code, message, retryable };
}

/** A 200: the completion, judged as the streamed call judges its end. */
function fromCompletion(jobId: string, body: unknown, requestId: string | undefined): BatchLineOutcome {
  const completion = completionSchema.safeParse(body);
  if (!completion.success) return failed(jobId, FailureCode.invalidOutput, 'unreadable completion', true);
  const [choice] = completion.data.choices;
  if (choice?.finish_reason === 'content_filter') {
    return failed(jobId, FailureCode.contentPolicy, 'the completion was stopped by content filtering', false);
  }
  const text = choice?.message.content ?? '';
  if (text.length === 0) return failed(jobId, FailureCode.invalidOutput, 'the completion was empty', true);
  const { prompt_tokens: inputTokens, completion_tokens: outputTokens } = completion.data.usage;
  return { jobId, outcome: 'succeeded', text, usage: { inputTokens, outputTokens }, requestId };
}

/** How one job's line ended, classified once, as a call's HTTP failure with the same status would be. */
export function classifyOpenAIBatchLine(line: OpenAIBatchLine): BatchLineOutcome {
  const jobId = line.custom_id;
  const unrun = UNRUN_CODES[line.error?.code ?? ''];
  if (unrun) return { jobId, outcome: 'unrun', reason: unrun };
  const response = line.response;
  if (!response) {
    // An error with no response and no code of ours: the provider failed the line itself.
    const message = line.error?.message ?? 'the line failed without a response';
    return failed(jobId, FailureCode.providerUnavailable, message, true);
  }
  if (response.status_code === 200)
    return fromCompletion(jobId, response.body, response.request_id ?? undefined);
  const body = errorBodySchema.safeParse(response.body);
  const refusal = body.success ? body.data.error : { message: `HTTP ${response.status_code}` };
  const { code, message, retryable } = classifyOpenAIStatus({ status: response.status_code, ...refusal });
  return failed(jobId, code, message, retryable);
}
