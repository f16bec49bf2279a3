/** The CLI side of image sets: flags → ImageSetInput, and the failures file --keep-going leaves beside the output. */
import path from 'node:path';
import type { Failure } from '../commands/report.js';
import type { ImageSetInput, ImageSetOrigin } from '../commands/image-set.js';
import type { PlatformSpec } from '../oci/platform.js';
import { writeFileAtomic } from '../util/fsutil.js';
import type { ImageSetFlags } from './options.js';

export function imageSetInput(flags: ImageSetFlags, refs: string[], platforms: PlatformSpec[] | undefined): ImageSetInput {
  return {
    refs,
    profiles: flags.profile ?? [],
    ...(flags.lock !== undefined ? { lock: flags.lock } : {}),
    ...(platforms?.length ? { platforms } : {}),
  };
}

/** `<output>.failures.json` (a bundle file, a store directory): what a --keep-going run did not carry. */
export async function writeFailuresFile(
  output: string,
  command: string,
  failures: readonly Failure[],
  origin: ImageSetOrigin | undefined,
): Promise<string> {
  const file = `${path.resolve(output).replace(/\/+$/, '')}.failures.json`;
  const doc = {
    command,
    created: new Date().toISOString(),
    ...(origin ? { profiles: origin.profiles, ...(origin.lock ? { lock: origin.lock } : {}) } : {}),
    failures,
  };
  await writeFileAtomic(file, `${JSON.stringify(doc, null, 2)}\n`);
  return file;
}

/** "3 images could not be resolved; nothing was pulled (--keep-going pulls the rest)". */
export function stoppedMessage(count: number, verb: string): string {
  return `${count} image${count === 1 ? '' : 's'} could not be resolved; nothing was ${verb} (--keep-going ${verb.replace(/ed$/, '')}s the rest)`;
}
