import {
  startFakeOpenAIImagesServer,
  type FakeImagesBehaviour,
} from '../../test/fakes/openai-images-server.js';
import {
  DESIGNS,
  START_CONTENDER,
  type Contender,
  type ContenderOptions,
  type DesignName,
} from './contenders.js';
import type { FakeOpenAIImagesServer } from '../../test/fakes/openai-images-server.js';

/** The three designs of a scenario, started one after another on one OpenAI fake, for its whole length. */
export interface ContenderSet {
  fake: FakeOpenAIImagesServer;
  of(design: DesignName): Contender;
  stop(): Promise<void>;
}

export async function startContenders(
  behaviour: FakeImagesBehaviour,
  options: Omit<ContenderOptions, 'fake'>,
): Promise<ContenderSet> {
  const fake = await startFakeOpenAIImagesServer({ behaviour });
  const started = new Map<DesignName, Contender>();
  const stop = async () => {
    await Promise.allSettled([...started.values()].map((contender) => contender.stop()));
    await fake.close();
  };
  try {
    // One at a time: a worker's start-up (bundling its workflows) is CPU the others would wait on.
    for (const design of DESIGNS) started.set(design, await START_CONTENDER[design]({ ...options, fake }));
  } catch (error) {
    await stop();
    throw error;
  }
  return { fake, of: (design) => started.get(design)!, stop };
}
