/** The one error boundary: maps error classes to exit codes and messages. */
import { FerryError } from '../util/errors.js';

export function reportError(err: unknown, json: boolean): number {
  const debug = !!process.env.FERRY_DEBUG;
  if (err instanceof FerryError) {
    if (json) {
      process.stdout.write(
        `${JSON.stringify({ type: 'error', code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) })}\n`,
      );
    }
    process.stderr.write(`ferry: error: ${err.message}\n`);
    if (err.hint) process.stderr.write(`ferry: hint: ${err.hint}\n`);
    if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
    return err.exitCode;
  }
  const message = err instanceof Error ? err.message : String(err);
  if (json) process.stdout.write(`${JSON.stringify({ type: 'error', code: 'INTERNAL', message })}\n`);
  process.stderr.write(`ferry: error: ${message}\n`);
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return 1;
}
