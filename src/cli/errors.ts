/** The one error boundary: maps error classes to exit codes and messages. */
import { writeErr, writeJsonLine } from './terminal.js';
import { FerryError } from '../util/errors.js';

export function reportError(err: unknown, json: boolean): number {
  const debug = !!process.env.FERRY_DEBUG;
  if (err instanceof FerryError) {
    if (json) {
      writeJsonLine({ type: 'error', code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) });
    }
    writeErr(`ferry: error: ${err.message}\n`);
    if (err.hint) writeErr(`ferry: hint: ${err.hint}\n`);
    if (debug && err.stack) writeErr(`${err.stack}\n`);
    return err.exitCode;
  }
  const message = err instanceof Error ? err.message : String(err);
  if (json) writeJsonLine({ type: 'error', code: 'INTERNAL', message });
  writeErr(`ferry: error: ${message}\n`);
  if (debug && err instanceof Error && err.stack) writeErr(`${err.stack}\n`);
  return 1;
}
