/**
 * The pure half of the containerd destination: the `ctr` command lines it runs, reading what
 * `ctr images ls` prints, the index.json of the OCI archive it streams into `ctr images
 * import`, and which images containerd can unpack on this host. No I/O here, so all of it is
 * table-tested (test/unit/transports/containerd/*.test.ts).
 *
 * How containerd 1.6 imports an OCI archive (images/archive/importer.go, client/import.go),
 * which decides the shape of what we stream:
 *  - every regular file in the tar except `oci-layout` and `manifest.json` is written to the
 *    content store as it is read, under whatever digest its bytes have (nothing is checked
 *    against the file's name: ferry must verify before it sends);
 *  - `index.json` is just one more such file; only after the tar's end does the importer look
 *    it up, walk it (manifests and indexes are read, so they must be in the archive) and create
 *    one image per entry named by `io.containerd.image.name`, else by
 *    `org.opencontainers.image.ref.name` (which ctr prefixes with `--base-name` or `import-DATE`);
 *  - a tar that ends early (unexpected EOF) fails the whole import before any image is named.
 * So index.json goes LAST: an archive cut short at any point has no index and names nothing,
 * even if it happens to be cut on an entry boundary.
 */
import type { Digest } from '../../oci/digest.js';
import type { Descriptor } from '../../oci/manifest.js';
import { MediaType } from '../../oci/mediatypes.js';
import { CONTAINERD_NAME, REF_NAME } from '../oci/layout.js';

export const DEFAULT_CONTAINERD_ADDRESS = '/run/containerd/containerd.sock';
/** Where `k3s ctr` connects when given no --address (k3s sets this default for its embedded ctr). */
export const K3S_CONTAINERD_ADDRESS = '/run/k3s/containerd/containerd.sock';
/** The namespace the kubelet's CRI plugin uses; images elsewhere are invisible to Kubernetes. */
export const DEFAULT_CONTAINERD_NAMESPACE = 'k8s.io';
/** How long `ctr version` may try to reach containerd before we call it unavailable. */
export const CONNECT_TIMEOUT = '5s';

/** Everything a ctr invocation needs, defaults applied. */
export interface CtrTarget {
  /** argv prefix of the client: ['ctr'], ['k3s', 'ctr'], ['/usr/local/bin/ctr']. */
  ctr: string[];
  /**
   * The socket named by the destination or CONTAINERD_ADDRESS; undefined = pass no --address
   * and let the client use its own default (`k3s ctr` has another one than `ctr`).
   */
  address: string | undefined;
  namespace: string;
}

export function resolveTarget(
  opts: { ctr?: string[] | undefined; address?: string | undefined; namespace?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
): CtrTarget {
  const ctr = opts.ctr && opts.ctr.length > 0 ? [...opts.ctr] : ['ctr'];
  // An empty CONTAINERD_ADDRESS means unset, as it does for ctr itself.
  const address = opts.address || env.CONTAINERD_ADDRESS || undefined;
  const namespace = opts.namespace || DEFAULT_CONTAINERD_NAMESPACE;
  return { ctr, address, namespace };
}

/**
 * The socket the client connects to when given no --address, where ferry knows it: plain `ctr`
 * (/run/containerd/containerd.sock) and `k3s ctr` (/run/k3s/containerd/containerd.sock).
 */
export function clientDefaultAddress(ctr: readonly string[]): string | undefined {
  const base = (s: string | undefined): string => (s ?? '').split('/').pop() ?? '';
  if (ctr.length === 1 && base(ctr[0]) === 'ctr') return DEFAULT_CONTAINERD_ADDRESS;
  if (ctr.length === 2 && base(ctr[0]) === 'k3s' && ctr[1] === 'ctr') return K3S_CONTAINERD_ADDRESS;
  return undefined;
}

/** How error messages name the socket: the one given, else the client's default (when known). */
export function describeAddress(t: CtrTarget): string {
  if (t.address) return t.address;
  const known = clientDefaultAddress(t.ctr);
  return known ? `${known} (the default of ${t.ctr.join(' ')})` : `the default address of ${t.ctr.join(' ')}`;
}

function addressArgs(t: CtrTarget): string[] {
  return t.address ? ['--address', t.address] : [];
}

/** `ctr [--address A] -n NS content ls -q`: every digest in the namespace's content store. */
export function contentListArgv(t: CtrTarget): string[] {
  return [...t.ctr, ...addressArgs(t), '-n', t.namespace, 'content', 'ls', '-q'];
}

/** The digests of `content ls -q` output (one per line; anything else is not a digest and ignored). */
export function parseContentList(stdout: string): Set<string> {
  const out = new Set<string>();
  for (const line of stdout.split('\n')) {
    const d = line.trim();
    if (/^sha256:[a-f0-9]{64}$/.test(d)) out.add(d);
  }
  return out;
}

/** `ctr [--address A] --connect-timeout T version`: the liveness probe. */
export function versionArgv(t: CtrTarget): string[] {
  return [...t.ctr, ...addressArgs(t), '--connect-timeout', CONNECT_TIMEOUT, 'version'];
}

/**
 * A containerd filter selecting one image by exact name. Filters given as separate arguments
 * are OR'ed (containerd's `List(ctx, filters...)`); the value is double-quoted (the filter
 * grammar's quoted string), so `/`, `:` and `@` in names need no care. Image names never
 * contain `"` or `\`; they are escaped anyway.
 */
export function nameFilter(name: string): string {
  return `name==${JSON.stringify(name)}`;
}

/** `ctr [--address A] -n NS images ls [name=="N"...]`: only the given names, when given. */
export function listArgv(t: CtrTarget, names: readonly string[] = []): string[] {
  return [...t.ctr, ...addressArgs(t), '-n', t.namespace, 'images', 'ls', ...names.map(nameFilter)];
}

/**
 * `ctr [--address A] -n NS images check [--snapshotter S] name=="N"...`: whether each image's
 * content is complete (for the host platform) and whether it is unpacked into the snapshotter.
 */
export function checkArgv(t: CtrTarget, names: readonly string[], snapshotter?: string): string[] {
  return [
    ...t.ctr,
    ...addressArgs(t),
    '-n',
    t.namespace,
    'images',
    'check',
    ...(snapshotter ? ['--snapshotter', snapshotter] : []),
    ...names.map(nameFilter),
  ];
}

export interface ImportFlags {
  /** false: --no-unpack. */
  unpack: boolean;
  /** With unpack: --snapshotter S; undefined leaves ctr's default ($CONTAINERD_SNAPSHOTTER, else containerd's). */
  snapshotter?: string | undefined;
}

/**
 * `ctr [--address A] -n NS images import --all-platforms [--no-unpack | --snapshotter S] -`.
 * `-` makes ctr read the archive from stdin (ctr 1.6 `images import`: `if Args().First() == "-"
 * { r = os.Stdin }`). --all-platforms keeps every child of an index (ctr otherwise walks only
 * the host's); names come from io.containerd.image.name, so --base-name is not needed.
 */
export function importArgv(t: CtrTarget, flags: ImportFlags): string[] {
  const mode = !flags.unpack ? ['--no-unpack'] : flags.snapshotter ? ['--snapshotter', flags.snapshotter] : [];
  return [...t.ctr, ...addressArgs(t), '-n', t.namespace, 'images', 'import', '--all-platforms', ...mode, '-'];
}

/**
 * Split a client command (`--ctr "k3s ctr"`) into argv with simple shell rules: whitespace
 * separates words; '...' is literal; "..." is literal except \" and \\; outside quotes a
 * backslash escapes the next character. No expansions. An unterminated quote or a trailing
 * backslash is an error (thrown as Error; the CLI makes it a usage error).
 */
export function splitCommandLine(input: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < input.length) {
    const c = input[i]!;
    if (c === "'") {
      const end = input.indexOf("'", i + 1);
      if (end === -1) throw new Error(`unterminated ' in ${JSON.stringify(input)}`);
      word += input.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= input.length) throw new Error(`unterminated " in ${JSON.stringify(input)}`);
        const d = input[i]!;
        if (d === '"') break;
        if (d === '\\' && (input[i + 1] === '"' || input[i + 1] === '\\')) {
          word += input[i + 1];
          i += 2;
          continue;
        }
        word += d;
        i++;
      }
      inWord = true;
      i++;
    } else if (c === '\\') {
      if (i + 1 >= input.length) throw new Error(`trailing backslash in ${JSON.stringify(input)}`);
      word += input[i + 1];
      inWord = true;
      i += 2;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** One row of `ctr images ls`. */
export interface CtrImageRow {
  name: string;
  mediaType: string;
  digest: string;
}

/**
 * Parse `ctr images ls`: a header line (REF TYPE DIGEST SIZE PLATFORMS LABELS), then one row
 * per image with whitespace-separated columns. Names, media types and digests never contain
 * whitespace; SIZE does ("1.2 MiB"), so only the first three columns are read.
 */
export function parseImageList(stdout: string): Map<string, CtrImageRow> {
  const rows = new Map<string, CtrImageRow>();
  for (const [name, mediaType, digest] of ctrTableRows(stdout, 3)) rows.set(name, { name, mediaType, digest });
  return rows;
}

/**
 * The data rows of a `ctr images` table (REF TYPE DIGEST …), split on whitespace: the header
 * and any line that is not a row (a warning, say: its third column is not a digest) are
 * skipped, as are rows with fewer than `minColumns` columns.
 */
function* ctrTableRows(stdout: string, minColumns: number): Generator<[string, string, string, ...string[]]> {
  for (const line of stdout.split('\n')) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < minColumns || (cols[0] === 'REF' && cols[1] === 'TYPE')) continue;
    if (!/^[a-z0-9]+:[A-Za-z0-9=_-]+$/.test(cols[2]!)) continue;
    yield cols as [string, string, string, ...string[]];
  }
}

/** One row of `ctr images check`. */
export interface CtrCheckRow {
  name: string;
  digest: string;
  /** STATUS is `complete (n/n)` (every blob of the host platform's image is present). */
  complete: boolean;
  /** UNPACKED (for the snapshotter asked about): `true` / `false`. */
  unpacked: boolean;
}

/**
 * Parse `ctr images check`: REF TYPE DIGEST STATUS SIZE UNPACKED, where STATUS is
 * `complete (3/3)`, `incomplete (1/3)` or `unavailable (0/?)` and SIZE is `1.2 MiB/1.2 MiB`
 * (both with spaces), so the first four columns and the last are read.
 */
export function parseImageCheck(stdout: string): Map<string, CtrCheckRow> {
  const rows = new Map<string, CtrCheckRow>();
  for (const cols of ctrTableRows(stdout, 6)) {
    const [name, , digest, status] = cols;
    const counts = /^\((\d+)\/(\d+)\)$/.exec(cols[4]!);
    const complete = status === 'complete' && counts !== null && counts[1] === counts[2];
    rows.set(name, { name, digest, complete, unpacked: cols[cols.length - 1] === 'true' });
  }
  return rows;
}

/**
 * The useful part of a ctr failure for an error message: the `ctr: …` line(s) it ends with
 * (where urfave/cli prints the returned error), else the last non-empty lines. Capped.
 */
export function summariseCtrStderr(stderr: string, max = 800): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const ctrLines = lines.filter((l) => l.startsWith('ctr: '));
  const picked = ctrLines.length > 0 ? ctrLines.slice(-2) : lines.slice(-3);
  const text = picked.join(' / ');
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** A root to name in the archive's index.json. */
export interface ImportEntry {
  name: string;
  root: { digest: Digest; mediaType: string; size: number };
}

/**
 * The archive's index.json: one entry per image, the root descriptor named twice. containerd
 * takes io.containerd.image.name verbatim as the image name; ref.name is what other OCI
 * tools read (containerd only falls back to it, prefixed, when the first is missing).
 */
export function buildImportIndex(entries: readonly ImportEntry[]): Buffer {
  const manifests: Descriptor[] = entries.map((e) => ({
    mediaType: e.root.mediaType,
    digest: e.root.digest,
    size: e.root.size,
    annotations: { [CONTAINERD_NAME]: e.name, [REF_NAME]: e.name },
  }));
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
}

/** The `oci-layout` file of the archive. */
export const OCI_LAYOUT_FILE = Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' }));

/** Where a blob lives inside the archive. */
export function blobEntryName(digest: string): string {
  const [alg, encoded] = digest.split(':', 2);
  return `blobs/${alg}/${encoded}`;
}

/** containerd's platform for this host (Go's GOARCH spelling of Node's process.arch). */
export function hostPlatform(arch: string = process.arch): string {
  const goArch: Record<string, string> = {
    x64: 'amd64',
    ia32: '386',
    arm: 'arm',
    arm64: 'arm64',
    ppc64: 'ppc64le',
    s390x: 's390x',
    riscv64: 'riscv64',
    loong64: 'loong64',
    mips: 'mips',
    mipsel: 'mipsle',
  };
  return `linux/${goArch[arch] ?? arch}`;
}

const IMAGE_CONFIG_TYPES: readonly string[] = [MediaType.OciConfig, MediaType.DockerConfig];

/**
 * Why containerd could not unpack an image on this host, or undefined when it can. ctr unpacks
 * for the host platform only: an index without a host child fails with "no match for platform
 * in manifest", and an artifact (config that is not an image config) with "mismatched image
 * rootfs and manifest layers" — after all images were named, and ctr stops unpacking at the
 * first failure. Such images are imported in a second run with --no-unpack instead.
 *
 * `platforms` is what the plan recorded for an index's children ("os/arch[/variant]"); for a
 * single manifest, its config media type decides (a lone manifest is unpacked whatever its
 * platform).
 */
export function unpackBlocker(
  img: { root: { mediaType: string }; platforms: readonly string[]; configMediaType?: string | undefined },
  host: string = hostPlatform(),
): string | undefined {
  if (img.root.mediaType === MediaType.OciIndex || img.root.mediaType === MediaType.DockerManifestList) {
    const ok = img.platforms.some((p) => p === host || p.startsWith(`${host}/`));
    return ok ? undefined : `it has no ${host} image (it has: ${img.platforms.join(', ') || 'none'})`;
  }
  if (img.configMediaType !== undefined && !IMAGE_CONFIG_TYPES.includes(img.configMediaType)) {
    return `it is not a container image (config ${img.configMediaType})`;
  }
  return undefined;
}

/** `containerd:<name>`, how reports show where an image went. */
export function destinationName(name: string): string {
  return `containerd:${name}`;
}
