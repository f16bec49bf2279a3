/**
 * The write half every command shares: open the destination through the transport table, run
 * the one executor over it, close it whatever happened.
 */
import { executeCopy, type ExecuteOptions } from '../copy/execute.js';
import type { CopyPlan } from '../copy/plan.js';
import type { DestinationReport } from '../copy/report.js';
import { openDestination, type Destination, type DestinationOpenContext } from '../transports/table.js';
import type { ImageSource } from '../transports/types.js';

export async function writePlan(
  dest: Destination,
  ctx: DestinationOpenContext,
  plan: CopyPlan,
  sources: ImageSource[],
  opts: ExecuteOptions,
): Promise<DestinationReport> {
  const target = await openDestination(dest, ctx);
  try {
    return await executeCopy(plan, sources, target, opts);
  } finally {
    await target.close();
  }
}
