import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';

const { WorkerDeploymentVersionStatus } = proto.temporal.api.enums.v1;

/** A Worker Deployment Version: the deployment a build belongs to, and the build. */
export interface DeploymentVersion {
  deploymentName: string;
  buildId: string;
}

/** A version Temporal does not know yet (none of its workers has polled) is asked for again this often. */
const UNKNOWN_VERSION_RETRY_MS = 500;

/**
 * Makes `version` current: new jobs start on it, auto-upgrade workflows move to it at their next task,
 * and pinned jobs of the previous version finish there (it drains). The version exists once one of its
 * workers has polled, so a deploy can promote as soon as its workers start: asked until then.
 */
export async function promoteVersion(
  client: Client,
  namespace: string,
  version: DeploymentVersion,
  timeoutMs = 60_000,
): Promise<void> {
  const giveUpAt = Date.now() + timeoutMs;
  for (;;) {
    try {
      await client.workflowService.setWorkerDeploymentCurrentVersion({ namespace, ...version });
      return;
    } catch (error) {
      // What stays refused past the wait (a version that never polled, a bad namespace) is told as is.
      if (Date.now() > giveUpAt) throw error;
      await new Promise((resolve) => setTimeout(resolve, UNKNOWN_VERSION_RETRY_MS));
    }
  }
}

/** One version of a deployment as an operator reads it before retiring it. */
export interface VersionState {
  buildId: string;
  /** `current`, `ramping`, `draining` (pinned jobs still open), `drained`, `inactive`. */
  status: string;
}

const STATUS_PREFIX = 'WORKER_DEPLOYMENT_VERSION_STATUS_';

/** Every version of the deployment and where it stands: a `drained` one may be shut down. */
export async function versionStates(
  client: Client,
  namespace: string,
  deploymentName: string,
): Promise<VersionState[]> {
  const { workerDeploymentInfo } = await client.workflowService.describeWorkerDeployment({
    namespace,
    deploymentName,
  });
  return (workerDeploymentInfo?.versionSummaries ?? []).map((summary) => ({
    buildId: summary.deploymentVersion?.buildId ?? '',
    status: (WorkerDeploymentVersionStatus[summary.status ?? 0] ?? '')
      .replace(STATUS_PREFIX, '')
      .toLowerCase(),
  }));
}
