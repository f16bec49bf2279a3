/**
 * TLS trust for a registry host, the way Docker and containers/image find it: the system
 * CA bundle, Node's bundled roots, per-host directories (/etc/docker/certs.d/HOST[:PORT],
 * /etc/containers/certs.d/HOST[:PORT]: *.crt are CAs, *.cert + *.key a client certificate),
 * and any --ca-file given.
 */
import { readdir, readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import path from 'node:path';
import { FerryError } from '../../util/errors.js';

export const DEFAULT_CERTS_DIRS = ['/etc/docker/certs.d', '/etc/containers/certs.d'];
const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem'];

export interface TlsMaterial {
  ca: string[];
  cert?: string;
  key?: string;
  /** Extra CAs beyond the defaults were found (for messages). */
  sources: string[];
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
}

let systemRoots: Promise<string[]> | undefined;
function loadSystemRoots(): Promise<string[]> {
  systemRoots ??= (async () => {
    const roots = [...rootCertificates];
    for (const f of SYSTEM_BUNDLES) {
      const pem = await readIfExists(f);
      if (pem) {
        roots.push(pem);
        break;
      }
    }
    return roots;
  })();
  return systemRoots;
}

export async function loadTlsMaterial(host: string, opts: { caFiles?: string[]; certsDirs?: string[] }): Promise<TlsMaterial> {
  const ca = [...(await loadSystemRoots())];
  const sources: string[] = [];
  for (const f of opts.caFiles ?? []) {
    const pem = await readIfExists(f);
    if (pem === undefined) throw new FerryError('CA_FILE_MISSING', `CA file ${f} does not exist`);
    ca.push(pem);
    sources.push(f);
  }
  let cert: string | undefined;
  let key: string | undefined;
  for (const base of opts.certsDirs ?? DEFAULT_CERTS_DIRS) {
    const dir = path.join(base, host);
    let entries: string[];
    try {
      entries = (await readdir(dir)).sort();
    } catch {
      continue;
    }
    for (const name of entries) {
      const full = path.join(dir, name);
      if (name.endsWith('.crt')) {
        const pem = await readIfExists(full);
        if (pem) {
          ca.push(pem);
          sources.push(full);
        }
      } else if (name.endsWith('.cert') && cert === undefined) {
        const keyFile = `${full.slice(0, -'.cert'.length)}.key`;
        const [c, k] = [await readIfExists(full), await readIfExists(keyFile)];
        if (c && !k) throw new FerryError('TLS_CONFIG', `client certificate ${full} has no matching key ${keyFile}`);
        if (c && k) {
          cert = c;
          key = k;
        }
      }
    }
  }
  return { ca, ...(cert ? { cert, key } : {}), sources };
}
