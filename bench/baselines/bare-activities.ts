import { callFakeProvider } from './fake-provider-call.js';

export const bareActivities = { callProvider: callFakeProvider };

export type BareActivities = typeof bareActivities;
