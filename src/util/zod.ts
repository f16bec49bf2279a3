/**
 * zod, configured once for all of ferry: schemas run without zod's JIT (it compiles each object
 * schema to a function with `new Function` on first use, which only pays off after many parses;
 * a CLI run parses each schema a few times, and the compile cost showed in start-up profiles).
 * Every module takes `z` from here, so the setting is in place before any schema is built.
 */
import { z } from 'zod';

z.config({ jitless: true });

export { z };
