/** Tamper helpers on tar files the tests write. */
import { open } from 'node:fs/promises';

/** Flip one byte in the middle of tar member `name` of the (uncompressed) tar at `file`. */
export async function flipByteOfMember(file: string, name: string): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const header = Buffer.alloc(512);
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(header, 0, 512, pos);
      if (bytesRead < 512 || header.every((b) => b === 0)) throw new Error(`${name} not found in ${file}`);
      const memberName = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
      const size = Number.parseInt(header.subarray(124, 136).toString('utf8').replace(/\0.*$/s, '').trim(), 8);
      if (memberName === name) {
        const at = pos + 512 + Math.floor(size / 2);
        const b = Buffer.alloc(1);
        await fh.read(b, 0, 1, at);
        b[0] = b[0]! ^ 0xff;
        await fh.write(b, 0, 1, at);
        return;
      }
      pos += 512 + Math.ceil(size / 512) * 512;
    }
  } finally {
    await fh.close();
  }
}
