/** A destination driven as `ferry load` drives it: executeCopy (all or nothing unless told), then close. */
import { executeCopy } from '../../src/copy/execute.js';
import type { EventSink } from '../../src/copy/events.js';
import type { CopyPlan } from '../../src/copy/plan.js';
import type { DestinationReport } from '../../src/copy/report.js';
import type { ImageDestination, ImageSource } from '../../src/transports/types.js';

export interface DriveOptions {
  onEvent?: EventSink;
  signal?: AbortSignal;
  allOrNothing?: boolean;
}

export async function loadInto(
  dest: ImageDestination,
  plan: CopyPlan,
  sources: ImageSource[],
  o: DriveOptions = {},
): Promise<DestinationReport> {
  try {
    return await executeCopy(plan, sources, dest, {
      action: 'loading',
      allOrNothing: o.allOrNothing ?? true,
      ...(o.onEvent ? { onEvent: o.onEvent } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
  } finally {
    await dest.close();
  }
}
