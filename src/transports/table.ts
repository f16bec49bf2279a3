/**
 * The transport table: every transport ferry knows, by name, with its location grammar
 * (parse/format, skopeo's syntax) and how to open it as a source (the images a location
 * holds) and as a destination. Commands go through this table only; a new transport is one
 * folder under src/transports plus one row here.
 *
 * Sources: `docker://REF` (or a bare reference, as `docker pull` takes it), `oci:PATH[:REF]`,
 * `oci-archive:PATH[:REF]`, `docker-archive:PATH[:REF|:@N]`, `bundle:PATH[:REF]`; and, as
 * names only, `docker-daemon:REF`, `containerd:REF`. formatLocation(parseLocation(s)) round-trips.
 *
 * Destinations name a place: `oci:DIR`, `docker://HOST[:PORT][/PREFIX]`, `docker-daemon[:SOCKET]`,
 * `containerd[:SOCKET][?namespace=NS]`; the images keep the names they have in the source.
 * For a single image (`ferry copy`), `docker://HOST/REPO[:TAG]` and `oci:DIR:REF` name it.
 *
 * Served locations (`ferry serve`) are what can be served in place as a registry: `oci:DIR[:REPO]`,
 * `oci-archive:FILE[:REPO]`, `bundle:FILE[:REPO]`, or a bare path to a regular file (a bundle or an
 * OCI archive). REPO is a repository name, for images named by a bare tag (`v1` → REPO:v1).
 */
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openBundleImages } from '../bundle/source.js';
import { parseReference, type Reference } from '../ref/reference.js';
import { bundleContent } from '../server/bundle-content.js';
import type { ServedContent } from '../server/content.js';
import { layoutContent } from '../server/layout-content.js';
import { isRepositoryName } from '../server/names.js';
import { UsageError } from '../util/errors.js';
import { DEFAULT_CONTAINERD_NAMESPACE } from './containerd/ctr.js';
import { openContainerdDestination } from './containerd/destination.js';
import { type Detection, KIND_NAMES, UnknownArchiveError, detectArchive } from './detect.js';
import { openDockerArchiveImages } from './docker-archive/source.js';
import { openDockerDaemonDestination } from './docker-daemon/destination.js';
import type { ArchiveOpenOptions } from './oci-archive/archive.js';
import { openOciArchiveImages } from './oci-archive/source.js';
import { openLayoutDestination } from './oci/destination.js';
import { openLayoutImages } from './oci/source.js';
import type { RegistryClient, RegistryClientOptions } from './registry/client.js';
import { openRegistryDestination } from './registry/destination.js';
import { parseNamePrefix, parseRegistryDestination, type PrefixRenaming, type RegistryDestination } from './registry/names.js';
import { RegistrySource } from './registry/source.js';
import type { ImageDestination, OpenedImages } from './types.js';

export { DEFAULT_CONTAINERD_NAMESPACE };

export const TRANSPORTS = ['docker', 'oci', 'oci-archive', 'docker-archive', 'docker-daemon', 'containerd', 'bundle'] as const;
export type TransportName = (typeof TRANSPORTS)[number];

type PathTransport = 'oci' | 'oci-archive' | 'docker-archive' | 'bundle';

export type ImageLocation =
  | { transport: 'docker'; ref: Reference }
  | { transport: PathTransport; path: string; ref: string | undefined }
  | { transport: 'docker-daemon' | 'containerd'; ref: Reference };

export type Destination =
  | { kind: 'oci'; dir: string; ref?: string }
  | ({ kind: 'registry'; image?: Reference } & RegistryDestination)
  | { kind: 'docker-daemon'; socket: string | undefined }
  | { kind: 'containerd'; address: string | undefined; namespace: string };

export interface DestinationParseOptions {
  /**
   * The destination may name the one image copied (`docker://HOST/REPO[:TAG]`,
   * `oci:DIR:REF`), as skopeo copy's does; otherwise it is a place the images keep their names in.
   */
  image?: boolean;
}

/** A location `ferry serve` serves in place (a layout directory or an archive file). */
export interface ServedLocation {
  transport: ServedTransport;
  path: string;
  /** The repository for images named by a bare tag (and unnamed ones). */
  repository: string | undefined;
}

export type ServedTransport = 'oci' | 'oci-archive' | 'bundle';

/** What opening a served location may need. */
export interface ServedOpenContext {
  /** Keep the registry host in repository names. */
  scoped?: boolean;
  /** A bundle's signature must verify with this public key (as `ferry load --key`). */
  key?: string;
  requireSignature?: boolean;
}

/** What opening a source may need: a registry client per host, a bundle's key. */
export interface SourceOpenContext {
  registry?: (host: string) => RegistryClient;
  key?: string;
  requireSignature?: boolean;
  signal?: AbortSignal;
}

/** What opening a destination may need, per kind. */
export interface DestinationOpenContext {
  registryClientOptions?: RegistryClientOptions;
  scoped?: boolean;
  chunkSize?: number;
  ctr?: string[];
  snapshotter?: string;
  unpack?: boolean;
  /** docker-daemon and containerd: names under a prefix (`--prefix`, `--scoped`); default the source names. */
  naming?: PrefixRenaming;
}

interface Transport {
  readonly name: TransportName;
  /** The part of a source location after `name:` (for docker, after `docker://`). */
  parse(rest: string, input: string): ImageLocation;
  format(loc: ImageLocation): string;
  /** The part of a destination after the name (and its `:` or `://`); `rest` is undefined for a bare name. */
  parseDestination?(rest: string | undefined, input: string, opts: DestinationParseOptions): Destination;
  openSource?(loc: ImageLocation, ctx: SourceOpenContext): Promise<OpenedImages>;
  openDestination?(dest: Destination, ctx: DestinationOpenContext): Promise<ImageDestination>;
  /** The part of a served location after `name:` (transports `ferry serve` can serve in place). */
  parseServed?(rest: string, input: string): ServedLocation;
  openServed?(loc: ServedLocation, ctx: ServedOpenContext): Promise<ServedContent>;
}

const DEST_FORMS = 'oci:DIR, docker://HOST[:PORT][/PREFIX], docker-daemon[:SOCKET] or containerd[:SOCKET][?namespace=NS]';

/** Like containers/image on non-Windows systems: the path ends at the first colon. */
function parsePathLocation(transport: PathTransport, rest: string, input: string): ImageLocation {
  const colon = rest.indexOf(':');
  const path = colon === -1 ? rest : rest.slice(0, colon);
  const ref = colon === -1 ? undefined : rest.slice(colon + 1);
  if (path === '') throw new UsageError(`${transport}: needs a path, e.g. ${transport}:./images${transport === 'oci' ? ':myref' : ''}`);
  if (ref !== undefined && ref !== '' && transport === 'oci' && !/^[A-Za-z0-9._@+-]+(?:[/:][A-Za-z0-9._@+-]+)*$/.test(ref)) {
    throw new UsageError(`oci: invalid reference ${JSON.stringify(ref)} in ${JSON.stringify(input)}`);
  }
  return { transport, path, ref: ref === '' ? undefined : ref };
}

/**
 * A served location: the path ends at the first colon (as in parsePathLocation); what follows
 * is a repository name, not a reference (the server names images by it).
 */
function parseServedPath(transport: ServedTransport, rest: string, input: string): ServedLocation {
  const colon = rest.indexOf(':');
  const path = colon === -1 ? rest : rest.slice(0, colon);
  const repository = colon === -1 ? undefined : rest.slice(colon + 1);
  if (path === '') {
    const example = {
      oci: 'a directory, e.g. oci:./ferry-store',
      'oci-archive': 'a file, e.g. oci-archive:./images.tar',
      bundle: 'a file, e.g. bundle:./images.ferry',
    };
    throw new UsageError(`${JSON.stringify(input)}: ${transport}: needs ${example[transport]}`);
  }
  if (repository !== undefined && !isRepositoryName(repository)) {
    throw new UsageError(
      `${JSON.stringify(input)}: ${JSON.stringify(repository)} is not a valid repository name ` +
        '(lower-case letters and digits separated by ".", "_", "__", "-" or "/")',
    );
  }
  return { transport, path, repository };
}

/** Naming options for the server: scoped names, and the repository of a served location. */
function servedNaming(loc: ServedLocation, ctx: ServedOpenContext): { scoped: boolean; repository?: string } {
  return { scoped: !!ctx.scoped, ...(loc.repository !== undefined ? { repository: loc.repository } : {}) };
}

/** A bundle's signature check, as ferry load's. */
function signing(ctx: ServedOpenContext): { key?: string; requireSignature?: boolean } {
  return { ...(ctx.key !== undefined ? { key: ctx.key } : {}), ...(ctx.requireSignature ? { requireSignature: true } : {}) };
}

function formatPathLocation(loc: ImageLocation): string {
  if (!('path' in loc)) throw new TypeError(`not a path location: ${loc.transport}`);
  return `${loc.transport}:${loc.path}${loc.ref !== undefined ? `:${loc.ref}` : ''}`;
}

function pathOf(loc: ImageLocation): { path: string; ref: string | undefined } {
  if (!('path' in loc)) throw new TypeError(`not a path location: ${loc.transport}`);
  return loc;
}

/** A name-only transport (a daemon's image store): `NAME:REF`. */
function parseNamed(transport: 'docker-daemon' | 'containerd', rest: string): ImageLocation {
  if (rest === '') throw new UsageError(`${transport}: needs an image reference, e.g. ${transport}:nginx:latest`);
  return { transport, ref: parseReference(rest) };
}

/** A socket given as a path or as unix:///path. */
function socketPath(s: string, what: string): string {
  const p = s.startsWith('unix://') ? s.slice('unix://'.length) : s;
  if (p === '' || /^[a-z]+:\/\//.test(p)) throw new UsageError(`${what}: expected a unix socket path, got ${JSON.stringify(s)}`);
  return p;
}

const TABLE: Record<TransportName, Transport> = {
  docker: {
    name: 'docker',
    parse: (rest) => ({ transport: 'docker', ref: parseReference(rest) }),
    format: (loc) => `docker://${(loc as { ref: Reference }).ref.toString()}`,
    parseDestination(rest, input, opts) {
      const s = rest ?? '';
      if (opts.image && s.includes('/')) {
        let image: Reference;
        try {
          image = parseReference(s);
        } catch (err) {
          throw new UsageError(`invalid destination ${JSON.stringify(input)}: ${(err as Error).message}`);
        }
        return { kind: 'registry', host: image.domain, prefix: '', image };
      }
      return { kind: 'registry', ...parseRegistryDestination(s) };
    },
    async openSource(loc, ctx) {
      const { ref } = loc as { ref: Reference };
      if (!ctx.registry) throw new TypeError('a registry source needs a client');
      return {
        description: `docker://${ref.toString()}`,
        images: [{ source: new RegistrySource(ctx.registry(ref.domain), ref), name: ref.toString() }],
        allOrNothing: false,
        close: async () => {},
      };
    },
    async openDestination(dest, ctx) {
      if (dest.kind !== 'registry') throw new TypeError(dest.kind);
      return openRegistryDestination(dest, {
        clientOptions: ctx.registryClientOptions ?? {},
        ...(ctx.scoped ? { scoped: true } : {}),
        ...(ctx.chunkSize ? { chunkSize: ctx.chunkSize } : {}),
      });
    },
  },
  oci: {
    name: 'oci',
    parse: (rest, input) => parsePathLocation('oci', rest, input),
    format: formatPathLocation,
    parseDestination(rest, input, opts) {
      if (!rest) throw new UsageError('oci: needs a directory, e.g. --to oci:./store');
      // Like skopeo, the path ends at the first colon.
      const colon = rest.indexOf(':');
      if (colon === -1) return { kind: 'oci', dir: rest };
      if (!opts.image) {
        throw new UsageError(`--to ${input}: an oci: destination is a directory; the images keep the names they have in the source`);
      }
      const loc = parsePathLocation('oci', rest, input) as { path: string; ref: string | undefined };
      return { kind: 'oci', dir: loc.path, ...(loc.ref !== undefined ? { ref: loc.ref } : {}) };
    },
    openSource: (loc) => openLayoutImages(pathOf(loc).path, pathOf(loc).ref),
    parseServed: (rest, input) => parseServedPath('oci', rest, input),
    openServed: (loc, ctx) => layoutContent(loc.path, servedNaming(loc, ctx)),
    openDestination(dest) {
      if (dest.kind !== 'oci') throw new TypeError(dest.kind);
      return openLayoutDestination(dest.dir, dest.ref);
    },
  },
  'oci-archive': {
    name: 'oci-archive',
    parse: (rest, input) => parsePathLocation('oci-archive', rest, input),
    format: formatPathLocation,
    openSource: (loc) => openOciArchiveImages(pathOf(loc).path, pathOf(loc).ref),
    // The server reads a plain OCI archive as it reads a bundle (both are tars holding a layout).
    parseServed: (rest, input) => parseServedPath('oci-archive', rest, input),
    openServed: (loc, ctx) => bundleContent(loc.path, { ...servedNaming(loc, ctx), ...signing(ctx) }),
  },
  'docker-archive': {
    name: 'docker-archive',
    parse: (rest, input) => parsePathLocation('docker-archive', rest, input),
    format: formatPathLocation,
    openSource: (loc) => openDockerArchiveImages(pathOf(loc).path, pathOf(loc).ref),
  },
  bundle: {
    name: 'bundle',
    parse: (rest, input) => parsePathLocation('bundle', rest, input),
    format: formatPathLocation,
    parseServed: (rest, input) => parseServedPath('bundle', rest, input),
    openServed: (loc, ctx) => bundleContent(loc.path, { ...servedNaming(loc, ctx), ...signing(ctx) }),
    async openSource(loc, ctx) {
      const { path, ref } = pathOf(loc);
      const opened = await openBundleImages(path, {
        ...(ctx.key !== undefined ? { key: ctx.key } : {}),
        ...(ctx.requireSignature ? { requireSignature: true } : {}),
        ...(ctx.signal ? { signal: ctx.signal } : {}),
      });
      if (ref === undefined) return opened;
      // One image of the bundle, by its name as stored or as a full reference.
      const want = (() => {
        try {
          return parseReference(ref).toString();
        } catch {
          return ref;
        }
      })();
      const images = opened.images.filter((i) => i.name === ref || i.name === want);
      if (images.length === 0) {
        await opened.close();
        throw new UsageError(`${opened.description} holds no image ${JSON.stringify(ref)}`, {
          hint: `it has: ${opened.images.map((i) => i.name).join(', ')}`,
        });
      }
      return { ...opened, images };
    },
  },
  'docker-daemon': {
    name: 'docker-daemon',
    parse: (rest) => parseNamed('docker-daemon', rest),
    format: (loc) => `docker-daemon:${(loc as { ref: Reference }).ref.toString()}`,
    parseDestination: (rest) => ({ kind: 'docker-daemon', socket: rest ? socketPath(rest, 'docker-daemon') : undefined }),
    async openDestination(dest, ctx) {
      if (dest.kind !== 'docker-daemon') throw new TypeError(dest.kind);
      return openDockerDaemonDestination(dest.socket, ctx.naming);
    },
  },
  containerd: {
    name: 'containerd',
    parse: (rest) => parseNamed('containerd', rest),
    format: (loc) => `containerd:${(loc as { ref: Reference }).ref.toString()}`,
    parseDestination(rest, input) {
      let s = rest ?? '';
      let namespace = DEFAULT_CONTAINERD_NAMESPACE;
      const q = s.indexOf('?');
      if (q !== -1) {
        const params = new URLSearchParams(s.slice(q + 1));
        for (const k of params.keys()) {
          if (k !== 'namespace') throw new UsageError(`--to ${input}: unknown parameter ${JSON.stringify(k)} (only namespace=NS)`);
        }
        const ns = params.get('namespace');
        // containerd's identifier rule (pkg/identifiers): alphanumeric runs joined by single
        // '.', '_' or '-', at most 76 characters (containerd 1.6/1.7).
        if (!ns || !/^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/.test(ns) || ns.length > 76) {
          throw new UsageError(`--to ${input}: invalid containerd namespace ${JSON.stringify(ns ?? '')}`);
        }
        namespace = ns;
        s = s.slice(0, q);
      }
      return { kind: 'containerd', address: s === '' ? undefined : socketPath(s, 'containerd'), namespace };
    },
    async openDestination(dest, ctx) {
      if (dest.kind !== 'containerd') throw new TypeError(dest.kind);
      return openContainerdDestination(dest, {
        ...(ctx.ctr ? { ctr: ctx.ctr } : {}),
        ...(ctx.snapshotter ? { snapshotter: ctx.snapshotter } : {}),
        ...(ctx.unpack === false ? { unpack: false } : {}),
        ...(ctx.naming ? { naming: ctx.naming } : {}),
      });
    },
  },
};

/** The row named `name`, if ferry has one (own keys only, never Object.prototype's). */
function rowOf(name: string): Transport | undefined {
  return Object.hasOwn(TABLE, name) ? TABLE[name as TransportName] : undefined;
}

/** The row of a transport. */
export function transport(name: TransportName): Transport {
  return TABLE[name];
}

/**
 * Parse a location. A string with no known transport prefix is a registry reference
 * (`nginx`, `ghcr.io/x/y:1`), as `docker pull` takes it.
 */
export function parseLocation(input: string): ImageLocation {
  const s = input.trim();
  if (s.startsWith('docker://')) return TABLE.docker.parse(s.slice('docker://'.length), input);
  const m = /^([a-z-]+):(.*)$/.exec(s);
  // Own rows only: `constructor:1` is an image reference, not Object.prototype's constructor.
  const row = m && m[1] !== 'docker' ? rowOf(m[1]!) : undefined;
  if (!row) {
    if (/^[a-z][a-z0-9-]*:\/\//.test(s) || /^(dir|containers-storage|sif|tarball):/.test(s)) {
      throw new UsageError(
        `unsupported transport in ${JSON.stringify(input)}; ferry knows ${TRANSPORTS.map((t) => (t === 'docker' ? 'docker://' : `${t}:`)).join(', ')}`,
      );
    }
    return TABLE.docker.parse(s, input);
  }
  return row.parse(m![2]!, input);
}

/**
 * Parse a served location (`ferry serve`). A string with no servable transport prefix is a
 * path to a regular file: a bundle or an OCI archive, served as `bundle:` serves it.
 */
export function parseServedLocation(input: string): ServedLocation {
  const m = /^([a-z-]+):(.*)$/s.exec(input);
  const row = m ? rowOf(m[1]!) : undefined;
  if (row?.parseServed) return row.parseServed(m![2]!, input);
  if (input !== '' && isRegularFile(input)) return { transport: 'bundle', path: input, repository: undefined };
  throw new UsageError(
    `cannot serve ${JSON.stringify(input)}: a source is oci:DIR or oci:DIR:REPO (an OCI image layout), or a bundle file (FILE or bundle:FILE)`,
  );
}

/**
 * A path given to `ferry load` without a transport: what it holds decides how it is read, as
 * for `docker load -i` (transports/detect.ts): a ferry bundle (checked as ever), a `docker
 * save` tar (plain or gzip-compressed) or an OCI archive. A path that is not a regular file
 * (a pipe, a missing file) is a bundle, as before: only a file can be looked at first. A file
 * that is none of them is an UnknownArchiveError (exit 2) saying what it is instead.
 */
export async function openArchiveFile(file: string, ctx: SourceOpenContext = {}): Promise<OpenedImages> {
  const bundle = (): Promise<OpenedImages> => TABLE.bundle.openSource!({ transport: 'bundle', path: file, ref: undefined }, ctx);
  if (!isRegularFile(file)) return bundle();
  // A gzip stream cannot be sought: it is decompressed once, into a private temp file, while
  // detection reads it; a docker save or OCI archive is then read from that copy.
  let tmp: string | undefined;
  const cleanup = async (): Promise<void> => {
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  };
  let d: Awaited<ReturnType<typeof detectArchive>>;
  try {
    d = await detectArchive(file, {
      gunzipTo: async () => {
        tmp = await mkdtemp(path.join(os.tmpdir(), 'ferry-archive-'));
        return path.join(tmp, 'archive.tar');
      },
    });
  } catch (err) {
    await cleanup();
    throw err;
  }
  const decompressed = d.gunzipped !== undefined ? { tarFile: d.gunzipped, cleanup } : undefined;
  if (!decompressed) await cleanup();
  try {
    return await openDetected(file, d, ctx, bundle, decompressed);
  } catch (err) {
    await decompressed?.cleanup();
    throw err;
  }
}

async function openDetected(
  file: string,
  d: Detection,
  ctx: SourceOpenContext,
  bundle: () => Promise<OpenedImages>,
  decompressed: ArchiveOpenOptions['decompressed'],
): Promise<OpenedImages> {
  if (d.kind === 'unknown') {
    const tool = { gzip: 'gunzip -k', xz: 'xz -dk', zstd: 'zstd -d', bzip2: 'bzip2 -dk', none: '' }[d.compression];
    throw new UnknownArchiveError(`${file} is not a ferry bundle, an OCI archive or a docker save tar (found: ${d.found})`, {
      hint:
        d.compression !== 'none' && d.compression !== 'gzip'
          ? `if it holds an image archive, decompress it first (${tool} ${file})`
          : 'name the transport if it is something else ferry reads, e.g. oci:DIR for an OCI layout directory',
    });
  }
  // A bundle is read in place, never from a copy; an OCI archive only from a whole one.
  if (d.compression === 'gzip' && d.kind !== 'docker-archive' && !decompressed) {
    throw new UnknownArchiveError(
      `${file} is ${KIND_NAMES[d.kind]}, gzip-compressed; ferry reads ${d.kind === 'bundle' ? 'bundles' : 'OCI archives'} uncompressed`,
      { hint: `gunzip -k ${file}, then load the uncompressed file` },
    );
  }
  if (d.kind !== 'bundle' && (ctx.key !== undefined || ctx.requireSignature)) {
    throw new UsageError(`--key and --require-signature check bundles; ${file} is ${KIND_NAMES[d.kind]}, which carries no signature`);
  }
  switch (d.kind) {
    case 'bundle':
      return bundle();
    case 'docker-archive':
      // docker load reads `docker save | gzip` too: from the copy detection made, or (when that
      // failed part way, say a truncated stream) decompressed again, which reports the failure.
      return openDockerArchiveImages(
        file,
        undefined,
        decompressed ? { decompressed } : d.compression === 'gzip' ? { decompress: true } : {},
      );
    case 'oci-archive':
      // Docker 25+ loads a gzip-compressed OCI archive too: from the copy detection made.
      return openOciArchiveImages(file, undefined, decompressed ? { decompressed } : {});
  }
}

/**
 * `ferry verify FILE` and `ferry serve FILE` read bundles (serve: OCI archives too); a docker
 * save tar handed to them is named for what it is (exit 2), rather than failing the bundle
 * checks as if it were a tampered bundle. `for` says what the command does instead.
 */
export async function refuseDockerSave(file: string, command: 'verify' | 'serve'): Promise<void> {
  if (!isRegularFile(file)) return;
  const d = await detectArchive(file);
  // A Docker 25+ save is an OCI layout too, which serve can serve.
  if (d.kind !== 'docker-archive' || (command === 'serve' && d.ociLayout && d.compression === 'none')) return;
  throw new UsageError(
    `${file} is not a ferry bundle; it is a docker save archive${d.compression === 'gzip' ? ' (gzip-compressed)' : ''}; load it with ferry load`,
    {
      hint:
        command === 'serve'
          ? `ferry load ${file} --to oci:DIR, then ferry serve oci:DIR`
          : `ferry load ${file} --to oci:DIR (or docker-daemon, containerd, docker://HOST)`,
    },
  );
}

/** Open a served location for the server. */
export async function openServed(loc: ServedLocation, ctx: ServedOpenContext = {}): Promise<ServedContent> {
  const row = TABLE[loc.transport];
  if (!row.openServed) throw new TypeError(`${loc.transport} cannot be served`);
  if (loc.transport !== 'oci') await refuseDockerSave(loc.path, 'serve');
  return row.openServed(loc, ctx);
}

function isRegularFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

export function formatLocation(loc: ImageLocation): string {
  return TABLE[loc.transport].format(loc);
}

/** Parse a destination (`--to`, or copy's DST). */
export function parseDestination(input: string, opts: DestinationParseOptions = {}): Destination {
  const s = input.trim();
  if (s.startsWith('docker://')) return TABLE.docker.parseDestination!(s.slice('docker://'.length), input, opts);
  const m = /^([a-z-]+)(?:[:?](.*))?$/s.exec(s);
  const row = m && m[1] !== 'docker' ? rowOf(m[1]!) : undefined;
  if (row?.parseDestination) {
    // containerd?namespace=NS: the query belongs to what follows the name.
    const rest = m![2] === undefined ? undefined : s[row.name.length] === '?' ? `?${m![2]}` : m![2];
    return row.parseDestination(rest, input, opts);
  }
  if (row && row.name !== 'docker') {
    throw new UsageError(`ferry cannot write to ${row.name}: (destinations: ${DEST_FORMS})`);
  }
  if (/^(dir|containers-storage):/.test(s)) throw new UsageError(`ferry cannot write to ${s.split(':')[0]}: (destinations: ${DEST_FORMS})`);
  throw new UsageError(`invalid destination ${JSON.stringify(input)}: expected ${DEST_FORMS}`);
}

export function formatDestination(d: Destination): string {
  switch (d.kind) {
    case 'oci':
      return `oci:${d.dir}${d.ref !== undefined ? `:${d.ref}` : ''}`;
    case 'registry':
      return d.image ? `docker://${d.image.toString()}` : `docker://${d.host}${d.prefix ? `/${d.prefix}` : ''}`;
    case 'docker-daemon':
      return d.socket ? `docker-daemon:${d.socket}` : 'docker-daemon';
    case 'containerd':
      return `containerd${d.address ? `:${d.address}` : ''}?namespace=${d.namespace}`;
  }
}

/**
 * The naming of an engine destination from `--prefix P` (and `--scoped`): undefined keeps the
 * source names. Only Docker Engine and containerd take it; a registry's prefix is part of
 * `docker://HOST/PREFIX`.
 */
export function engineNaming(
  dest: Destination,
  opts: { prefix?: string | undefined; scoped?: boolean | undefined },
): PrefixRenaming | undefined {
  if (opts.prefix === undefined) return undefined;
  if (dest.kind !== 'docker-daemon' && dest.kind !== 'containerd') {
    throw new UsageError(
      `--prefix is for docker-daemon and containerd destinations; ${formatDestination(dest)} is not one` +
        (dest.kind === 'registry' ? ' (a registry takes its prefix in the destination: docker://HOST/PREFIX)' : ''),
    );
  }
  return { prefix: parseNamePrefix(opts.prefix), scoped: !!opts.scoped };
}

/** `ferry load --to`: a place, never an image name. */
export const parseLoadDestination = (input: string): Destination => parseDestination(input);
export const formatLoadDestination = formatDestination;

const KIND_TRANSPORT: Record<Destination['kind'], TransportName> = {
  oci: 'oci',
  registry: 'docker',
  'docker-daemon': 'docker-daemon',
  containerd: 'containerd',
};

/** The images a location holds (one when it names one), readable for a copy. */
export function openSource(loc: ImageLocation, ctx: SourceOpenContext = {}): Promise<OpenedImages> {
  const row = TABLE[loc.transport];
  if (!row.openSource)
    throw new UsageError(`ferry cannot read from ${loc.transport}: (sources: docker://, oci:, oci-archive:, docker-archive:, bundle:)`);
  return row.openSource(loc, ctx);
}

export function openDestination(dest: Destination, ctx: DestinationOpenContext = {}): Promise<ImageDestination> {
  return TABLE[KIND_TRANSPORT[dest.kind]].openDestination!(dest, ctx);
}
