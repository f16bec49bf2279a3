#!/usr/bin/env node
/** The ferry command line: yargs wiring and the single error boundary. */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { pullCommand } from './pull.js';
import { serveCommand } from './serve.js';
import { bundleCommand } from './bundle.js';
import { verifyCommand } from './verify.js';
import { inspectCommand } from './inspect.js';
import { loadCommand } from './load.js';
import { reportError } from './errors.js';
import { UsageError } from '../util/errors.js';

export const VERSION = '0.1.0';

export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  let cli = yargs(argv)
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
  try {
    process.exitCode = 0;
    await cli.parseAsync();
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    return reportError(err, json);
  }
}

const code = await main(hideBin(process.argv));
process.exitCode = code;
