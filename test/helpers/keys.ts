/** Signing keys made with openssl for a test: `NAME.pem` (private) and `NAME.pub` in `dir`. */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

export function makeKeyPair(dir: string, name: string, algorithm: 'ec-p256' | 'ed25519'): { key: string; pub: string } {
  const key = path.join(dir, `${name}.pem`);
  const pub = path.join(dir, `${name}.pub`);
  const gen = algorithm === 'ec-p256' ? ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-algorithm', 'ed25519'];
  execFileSync('openssl', ['genpkey', ...gen, '-out', key]);
  execFileSync('openssl', ['pkey', '-in', key, '-pubout', '-out', pub]);
  return { key, pub };
}
