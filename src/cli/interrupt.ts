/**
 * SIGINT/SIGTERM for long-running commands: the first stops the run cleanly (what is done is
 * reported, nothing half-written is named), a second forces exit. Either way the exit status
 * is 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as shells and CI expect of an
 * interrupted command.
 */
import { writeErr } from './terminal.js';
import { constants } from 'node:os';

let interruptedBy: NodeJS.Signals | undefined;

/** The exit status an interrupted run must end with, or undefined when no signal came. */
export function interruptedExitCode(): number | undefined {
  return interruptedBy === undefined ? undefined : 128 + (constants.signals[interruptedBy] ?? 0);
}

export async function interruptible<T>(
  run: (signal: AbortSignal) => Promise<T>,
  cleanup: () => Promise<void> = async () => {},
): Promise<T> {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (ac.signal.aborted) process.exit(128 + (constants.signals[sig] ?? 0));
    interruptedBy = sig;
    writeErr(`\nferry: ${sig === 'SIGINT' ? 'interrupted' : 'terminated'}, stopping (again to force)\n`);
    ac.abort(new Error('interrupted'));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await run(ac.signal);
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
