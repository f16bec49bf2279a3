/** What every command reports about failures: one list of planning and execution failures, and its exit status. */
import { causeOf, type ImageResult } from '../copy/execute.js';
import type { CopyPlan } from '../copy/plan.js';
import { errorMessage } from '../util/errors.js';

export interface Failure {
  name: string;
  error: string;
  errorCode?: string;
  hint?: string;
  /** Shared by failures of one cause (copy/execute.ts causeOf), so a report prints each cause once. */
  cause?: string;
}

const INTEGRITY_CODES = new Set([
  'DIGEST_MISMATCH',
  'SIZE_MISMATCH',
  'DIFF_ID_MISMATCH',
  'NOT_LOADED',
  // A damaged zstd member of a bundle (zstd/frame.ts ZstdFormatError, an IntegrityError).
  'ZSTD_FRAME_INVALID',
  'ZSTD_INVALID',
  'ZSTD_NOT_ZSTD',
  'ZSTD_OVERSIZE',
  'ZSTD_SHORT',
  'ZSTD_SIZE_MISMATCH',
  'ZSTD_TRAILING_DATA',
  'ZSTD_TRUNCATED',
  'ZSTD_WINDOW_TOO_LARGE',
]);

/** True when every failure is content not matching its digest or size (exit 3, like verify). */
export function onlyIntegrityFailures(failures: readonly Failure[]): boolean {
  return failures.length > 0 && failures.every((f) => f.errorCode !== undefined && INTEGRITY_CODES.has(f.errorCode));
}

/** Every failure of a run, planning and execution, in one list. */
export function collectFailures(planFailures: CopyPlan['failures'], images: readonly ImageResult[]): Failure[] {
  return [
    ...planFailures.map((f) => {
      const code = (f.error as { code?: unknown }).code;
      const hint = (f.error as { hint?: unknown }).hint;
      const cause = causeOf(f.error);
      return {
        name: f.name,
        error: errorMessage(f.error),
        ...(typeof code === 'string' ? { errorCode: code } : {}),
        ...(typeof hint === 'string' ? { hint } : {}),
        ...(cause !== undefined ? { cause } : {}),
      };
    }),
    ...images
      .filter((i) => i.status === 'failed')
      .map((i) => ({
        name: i.name,
        error: i.error ?? 'failed',
        ...(i.errorCode ? { errorCode: i.errorCode } : {}),
        ...(i.hint ? { hint: i.hint } : {}),
        ...(i.cause ? { cause: i.cause } : {}),
      })),
  ];
}
