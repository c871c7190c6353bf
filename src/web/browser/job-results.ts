import type { Job, KilnClient } from '../../client/index.js';

/** A succeeded job's result never changes: each is fetched once per page and kept as a blob. */
export class JobResults {
  private readonly blobs = new Map<string, Promise<Blob>>();

  constructor(private readonly client: KilnClient) {}

  /** The result, unless retention removed it. */
  available(job: Job): boolean {
    return job.status === 'succeeded' && job.purgedAt === null;
  }

  private blob(jobId: string): Promise<Blob> {
    let blob = this.blobs.get(jobId);
    if (!blob) {
      // A failed fetch is not kept: the next render tries again.
      blob = this.client.content(jobId).catch((error: unknown) => {
        this.blobs.delete(jobId);
        throw error;
      });
      this.blobs.set(jobId, blob);
    }
    return blob;
  }

  private readonly urls = new Map<string, Promise<string>>();

  /** A `blob:` URL of the result, the same one each time: an image shown twice is decoded once. */
  url(jobId: string): Promise<string> {
    let url = this.urls.get(jobId);
    if (!url) {
      url = this.blob(jobId).then((blob) => URL.createObjectURL(blob));
      this.urls.set(jobId, url);
      url.catch(() => this.urls.delete(jobId));
    }
    return url;
  }

  async text(jobId: string): Promise<string> {
    return (await this.blob(jobId)).text();
  }

  /** The file name a download is saved under. */
  fileName(job: Job): string {
    return `${job.id}.${job.kind === 'image' ? 'png' : 'txt'}`;
  }
}
