import type { Config, Plan } from '../config/index.js';

/**
 * A user's plan: how many of their jobs run at once and their share of a busy provider. One removed
 * from the configuration falls back to the default plan.
 */
export function planNamed(plans: Config['plans'], name: string): Plan {
  return plans.byName[name] ?? plans.byName[plans.defaultPlan]!;
}
