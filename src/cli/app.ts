/** The ferry command line: yargs wiring and the single error boundary (main.ts runs it). */
import yargs from 'yargs';
import { pullCommand } from './pull.js';
import { serveCommand } from './serve.js';
import { bundleCommand } from './bundle.js';
import { verifyCommand } from './verify.js';
import { inspectCommand } from './inspect.js';
import { loadCommand } from './load.js';
import { copyCommand } from './copy.js';
import { inventoryCommand } from './inventory.js';
import { mirrorConfigCommand } from './mirror-config.js';
import { planCommand } from './plan.js';
import { storeCommand } from './store.js';
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

/** Columns for help text: the terminal's, else $COLUMNS (piped output), else 100; at most 110. */
function helpWidth(): number {
  const env = Number.parseInt(process.env.COLUMNS ?? '', 10);
  return Math.min(110, process.stdout.columns || (env >= 20 ? env : 100));
}

/** Word-wrap `text` to `width` columns (a word longer than that keeps its own line). */
function wrapWords(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

/**
 * Examples are laid out by ferry, not by yargs' two-column table: yargs hard-wraps every cell
 * at the help width, which cut commands in the middle (`--to` on one line, its value on the
 * next), so a pasted example ran something else. Each example becomes its description as a
 * shell comment (wrapped like prose) and then the command, whole, on one line, however narrow
 * the terminal. yargs is given a short placeholder per example (which it never wraps), and
 * the placeholders are replaced in the rendered help. Left alone if yargs' internals differ.
 */
function layoutExamples(cli: unknown, scriptName: string, width: number): void {
  type Usage = { example?: unknown; help?: unknown };
  const internals = (cli as { getInternalMethods?: () => { getUsageInstance?: () => Usage } }).getInternalMethods?.();
  const usage = internals?.getUsageInstance?.();
  if (!usage || typeof usage.example !== 'function' || typeof usage.help !== 'function') return;
  const addExample = usage.example as (cmd: string, description?: string) => void;
  const help = usage.help as () => string;
  const examples: Array<{ cmd: string; description: string }> = [];
  const placeholder = (i: number): string => `ferry-example-${i}-end`;
  usage.example = (cmd: string, description?: string): void => {
    examples.push({ cmd, description: description ?? '' });
    addExample(placeholder(examples.length - 1), '');
  };
  usage.help = (): string => {
    let first = true;
    return help().replace(/^[ \t]*ferry-example-(\d+)-end[ \t]*$/gm, (_line, n: string) => {
      const ex = examples[Number(n)]!;
      const lines = [
        ...(first ? [] : ['']),
        ...wrapWords(ex.description, width - 4).map((l) => `  # ${l}`),
        `  ${ex.cmd.replace(/\$0/g, scriptName)}`,
      ];
      first = false;
      return lines.join('\n');
    });
  };
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
    .wrap(helpWidth())
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(msg);
    });
  cli = planCommand(cli);
  cli = pullCommand(cli);
  cli = serveCommand(cli);
  cli = bundleCommand(cli);
  cli = verifyCommand(cli);
  cli = inspectCommand(cli);
  cli = loadCommand(cli);
  cli = copyCommand(cli);
  cli = storeCommand(cli);
  cli = inventoryCommand(cli);
  cli = mirrorConfigCommand(cli);
  skipHelpCache(cli);
  layoutExamples(cli, 'ferry', helpWidth());
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
