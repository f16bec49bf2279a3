/**
 * Push a generated corpus to a registry with skopeo, digests preserved, and check each pushed
 * manifest's digest against the layout's. Used by integration tests to seed real registries.
 *
 * skopeo's oci: transport only resolves index.json entries of OCI media types (containers/image
 * skips any other descriptor when matching a ref name), so Docker schema2 images and manifest
 * lists in the layout are pushed from a dir: transport view of the same blobs (symlinks into the
 * layout, made in a temp dir) instead. The bytes, and so the digests, are the same.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { hex, parseDigest, sha256, type Digest } from '../../src/oci/digest.js';
import { isIndexType, MediaType } from '../../src/oci/mediatypes.js';
import { DigestMismatchError, FerryError, UsageError } from '../../src/util/errors.js';
import type { CorpusImage, CorpusManifest } from './generate.js';

export interface PushOptions {
  /** HTTPS with a private CA: a directory holding the CA certificate as *.crt (skopeo --dest-cert-dir). */
  tls?: { caDir: string };
  creds?: { username: string; password: string };
  /** Plain HTTP (or unverified HTTPS): --dest-tls-verify=false. */
  insecure?: boolean;
  /** skopeo binary; default "skopeo" from PATH. */
  skopeo?: string;
}

const SKOPEO_HINT = "install skopeo (Debian/Ubuntu package 'skopeo': apt-get install skopeo)";

/** Throws a clear error naming the package unless skopeo runs. */
export function requireSkopeo(bin = 'skopeo'): void {
  const probe = spawnSync(bin, ['--version'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) {
    throw new FerryError('SKOPEO_MISSING', `skopeo is required but ${probe.error ? 'was not found' : 'does not run'} (${bin})`, {
      hint: SKOPEO_HINT,
      cause: probe.error,
    });
  }
}

/**
 * Push every image of `corpus` (generated at `layoutDir`) to `registryHost` (host[:port]) as
 * HOST/repo:tag, then check that the registry serves each manifest with the layout's digest.
 */
export async function pushCorpus(layoutDir: string, corpus: CorpusManifest, registryHost: string, opts: PushOptions = {}): Promise<void> {
  if (opts.insecure && opts.tls) throw new UsageError('pushCorpus: insecure and tls are mutually exclusive');
  if (!/^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$/.test(registryHost)) {
    throw new UsageError(`pushCorpus: registry host must be host[:port], got ${JSON.stringify(registryHost)}`);
  }
  const bin = opts.skopeo ?? 'skopeo';
  requireSkopeo(bin);
  const scratch = await mkdtemp(join(tmpdir(), 'ferry-corpus-push-'));
  try {
    const common: string[] = [];
    const destFlags: string[] = [];
    if (opts.insecure) {
      destFlags.push('--dest-tls-verify=false');
      common.push('--tls-verify=false');
    } else if (opts.tls) {
      destFlags.push('--dest-tls-verify=true', `--dest-cert-dir=${resolve(opts.tls.caDir)}`);
      common.push('--tls-verify=true', `--cert-dir=${resolve(opts.tls.caDir)}`);
    }
    if (opts.creds) {
      // An auth file rather than --creds, so the password never shows up in a process listing.
      const authfile = join(scratch, 'auth.json');
      const auth = Buffer.from(`${opts.creds.username}:${opts.creds.password}`).toString('base64');
      await writeFile(authfile, JSON.stringify({ auths: { [registryHost]: { auth } } }), { mode: 0o600 });
      destFlags.push(`--dest-authfile=${authfile}`);
      common.push(`--authfile=${authfile}`);
    }
    for (const image of corpus.images) {
      const dest = `docker://${registryHost}/${image.repo}:${image.tag}`;
      const src = await skopeoSource(layoutDir, image, join(scratch, `src-${hex(image.digest)}`));
      await runSkopeo(bin, ['copy', '--quiet', '--all', '--preserve-digests', ...destFlags, src, dest]);
      const raw = await runSkopeo(bin, ['inspect', '--raw', ...common, dest]);
      const pushed = sha256(raw);
      if (pushed !== image.digest) throw new DigestMismatchError(image.digest, pushed, `pushed manifest ${dest}`);
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * A skopeo source reference for one corpus image: oci:DIR:REF for OCI media types, else a dir:
 * transport view staged under `scratchDir` (created if needed; the caller removes it).
 */
export async function skopeoSource(
  layoutDir: string,
  image: Pick<CorpusImage, 'ref' | 'digest' | 'mediaType'>,
  scratchDir: string,
): Promise<string> {
  const dir = resolve(layoutDir);
  if (image.mediaType === MediaType.OciManifest || image.mediaType === MediaType.OciIndex) {
    // containers/image splits "oci:DIR:REF" at the first colon.
    if (dir.includes(':')) throw new UsageError(`skopeo cannot address an OCI layout whose path contains ":" (${dir})`);
    return `oci:${dir}:${image.ref}`;
  }
  await stageDirTransport(dir, image.digest, scratchDir);
  return `dir:${resolve(scratchDir)}`;
}

/**
 * Lay out one image (manifest or index, with its children) from an OCI layout in skopeo's dir:
 * transport format, version 1.1: manifest.json, <hex>.manifest.json per index child, <hex> per
 * blob, and a version file. Entries are symlinks to the layout's blobs.
 */
export async function stageDirTransport(layoutDir: string, digest: Digest, outDir: string): Promise<void> {
  const blobPath = (d: string) => join(resolve(layoutDir), 'blobs', 'sha256', hex(parseDigest(d)));
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'version'), 'Directory Transport Version: 1.1\n');
  const linked = new Set<string>();
  const link = async (d: string, name: string) => {
    if (linked.has(name)) return;
    linked.add(name);
    await symlink(blobPath(d), join(outDir, name));
  };
  const stageImage = async (d: string, name: string) => {
    await link(d, name);
    const m = JSON.parse(await readFile(blobPath(d), 'utf8')) as { config?: { digest: string }; layers?: Array<{ digest: string }> };
    for (const b of [...(m.config ? [m.config] : []), ...(m.layers ?? [])]) await link(b.digest, hex(parseDigest(b.digest)));
  };
  const top = JSON.parse(await readFile(blobPath(digest), 'utf8')) as { mediaType?: string; manifests?: Array<{ digest: string }> };
  if (isIndexType(top.mediaType)) {
    await link(digest, 'manifest.json');
    for (const child of top.manifests ?? []) await stageImage(child.digest, `${hex(parseDigest(child.digest))}.manifest.json`);
  } else {
    await stageImage(digest, 'manifest.json');
  }
}

function runSkopeo(bin: string, args: string[]): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    execFile(bin, args, { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const detail = stderr.toString('utf8').trim() || err.message;
        reject(new FerryError('SKOPEO_FAILED', `skopeo ${args[0]} failed: ${detail}`, { cause: err }));
        return;
      }
      resolvePromise(stdout);
    });
  });
}
