/** npm run schema: write profiles/schema.json from the zod schema (src/profile/schema.ts); a test checks they agree. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { profileJsonSchema } from '../src/profile/schema.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
writeFileSync(path.join(ROOT, 'profiles', 'schema.json'), `${JSON.stringify(profileJsonSchema(), null, 2)}\n`);
