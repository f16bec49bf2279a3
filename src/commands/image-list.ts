/** Image lists (`-f LIST`): one reference per line; blank lines and # comments ignored. */
import { readFile } from 'node:fs/promises';
import { isStdin } from '../util/fsutil.js';
import { UsageError } from '../util/errors.js';

/** Read an image list: one reference per line; blank lines and # comments ignored. */
export async function readImageList(file: string): Promise<string[]> {
  let text: string;
  try {
    text = isStdin(file) ? await readStdin() : await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read image list ${file}: ${(err as Error).message}`);
  }
  return parseImageList(text);
}

export function parseImageList(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
    .filter((l) => l !== '');
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
