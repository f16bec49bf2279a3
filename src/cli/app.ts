/** The ferry command line: yargs wiring and the single error boundary (main.ts runs it). */
import yargs from 'yargs';
import { pullCommand } from './pull.js';
import { serveCommand } from './serve.js';
import { bundleCommand } from './bundle.js';
import { verifyCommand } from './verify.js';
import { inspectCommand } from './inspect.js';
import { loadCommand } from './load.js';
import { copyCommand } from './copy.js';
import { reportError } from './errors.js';
import { interruptedExitCode } from './interrupt.js';
import { UsageError } from '../util/errors.js';
import { STDIN_PATH } from '../util/fsutil.js';

export const VERSION = '0.1.0';

/**
 * yargs renders the whole help text each time a command runs, to have it ready should the
 * command fail; ferry's .fail() never shows it, and rendering it costs about 15 ms of a
 * 150 ms start. Switched off where yargs' internals have the expected shape, else left alone.
 */
function skipHelpCache(cli: unknown): void {
  const internals = (
    cli as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: unknown } } }
  ).getInternalMethods?.();
  const usage = internals?.getUsageInstance?.();
  if (usage && typeof usage.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => {};
}

export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  // yargs cannot take a bare "-" (stdin) as a value or positional: it parses it as an empty
  // flag. Hand it over as /dev/stdin, which every command treats as stdin (isStdin).
  let cli = yargs(argv.map((a) => (a === '-' ? STDIN_PATH : a)))
    .scriptName('ferry')
    .usage('$0 <command> [options]\n\nMove container images across an air gap.')
    .version(VERSION)
    .strict()
    .demandCommand(1, 'name a command')
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(msg);
    });
  cli = pullCommand(cli);
  cli = serveCommand(cli);
  cli = bundleCommand(cli);
  cli = verifyCommand(cli);
  cli = inspectCommand(cli);
  cli = loadCommand(cli);
  cli = copyCommand(cli);
  skipHelpCache(cli);
  try {
    // No exit code until the command settles: if it never did (a stalled promise with nothing
    // left to wake it), Node exits with 13 (unsettled top-level await), not with a 0 that
    // reports success for a run that did nothing.
    process.exitCode = undefined;
    await cli.parseAsync();
    return interruptedExitCode() ?? (typeof process.exitCode === 'number' ? process.exitCode : 0);
  } catch (err) {
    const code = reportError(err, json);
    return interruptedExitCode() ?? code;
  }
}
