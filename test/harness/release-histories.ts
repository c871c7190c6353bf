import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** One folder per released version, each holding the histories recorded at its release. */
const HISTORIES_DIR = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));

export function releaseHistoriesDir(version: string): string {
  return `${HISTORIES_DIR}${version}`;
}

export interface ReleaseHistory {
  release: string;
  name: string;
  file: string;
}

/** Every recorded history of every release. */
export async function releaseHistories(): Promise<ReleaseHistory[]> {
  const releases = await readdir(HISTORIES_DIR);
  const perRelease = await Promise.all(
    releases.map(async (release) =>
      (await readdir(releaseHistoriesDir(release)))
        .filter((file) => file.endsWith('.json'))
        .map((file) => ({
          release,
          name: file.slice(0, -'.json'.length),
          file: `${releaseHistoriesDir(release)}/${file}`,
        })),
    ),
  );
  return perRelease.flat();
}
