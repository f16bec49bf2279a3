#!/usr/bin/env node
/** The ferry executable: runs the command line (app.ts) on this process's arguments. */
import { hideBin } from 'yargs/helpers';
import { main } from './app.js';

process.exitCode = await main(hideBin(process.argv));
