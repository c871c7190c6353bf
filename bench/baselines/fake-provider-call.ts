/**
 * The one provider call both baselines make: the OpenAI images request Kiln's adapter sends for
 * `openaiBody` (DALL·E 2, 256x256, base64), to the bench's fake, with plain fetch. Returns the image's
 * size in bytes, so that the image itself never travels through a workflow history or a reply.
 */
export async function callFakeProvider(prompt: string): Promise<number> {
  const res = await fetch(`${process.env.BASELINE_PROVIDER_URL}/images/generations`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${process.env.BASELINE_PROVIDER_KEY}`,
      'Content-Type': 'application/json',
    },
    body: JSON.stringify({
      model: 'dall-e-2',
      prompt,
      n: 1,
      size: '256x256',
      response_format: 'b64_json',
    }),
  });
  if (!res.ok) throw new Error(`provider answered ${res.status}: ${await res.text()}`);
  const answer = (await res.json()) as { data: { b64_json: string }[] };
  return Buffer.from(answer.data[0]!.b64_json, 'base64').length;
}
