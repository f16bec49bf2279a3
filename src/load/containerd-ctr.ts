/**
 * The pure half of the containerd destination: the `ctr` command lines it runs, reading what
 * `ctr images ls` prints, the index.json of the OCI archive it streams into `ctr images
 * import`, and which images containerd can unpack on this host. No I/O here, so all of it is
 * table-tested (test/unit/load/containerd-*.test.ts).
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
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { MediaType } from '../oci/mediatypes.js';
import { CONTAINERD_NAME, REF_NAME } from '../transports/oci/layout.js';

export const DEFAULT_CONTAINERD_ADDRESS = '/run/containerd/containerd.sock';
/** The namespace the kubelet's CRI plugin uses; images elsewhere are invisible to Kubernetes. */
export const DEFAULT_CONTAINERD_NAMESPACE = 'k8s.io';
/** How long `ctr version` may try to reach containerd before we call it unavailable. */
export const CONNECT_TIMEOUT = '5s';

/** Everything a ctr invocation needs, defaults applied. */
export interface CtrTarget {
  /** argv prefix of the client: ['ctr'], ['k3s', 'ctr'], ['/usr/local/bin/ctr']. */
  ctr: string[];
  address: string;
  namespace: string;
}

export function resolveTarget(
  opts: { ctr?: string[]; address?: string; namespace?: string },
  env: NodeJS.ProcessEnv = process.env,
): CtrTarget {
  const ctr = opts.ctr && opts.ctr.length > 0 ? [...opts.ctr] : ['ctr'];
  // An empty CONTAINERD_ADDRESS means unset, as it does for ctr itself.
  const address = opts.address || env.CONTAINERD_ADDRESS || DEFAULT_CONTAINERD_ADDRESS;
  const namespace = opts.namespace || DEFAULT_CONTAINERD_NAMESPACE;
  return { ctr, address, namespace };
}

/** `ctr --address A [--connect-timeout T] version`: the liveness probe. */
export function versionArgv(t: CtrTarget): string[] {
  return [...t.ctr, '--address', t.address, '--connect-timeout', CONNECT_TIMEOUT, 'version'];
}

/** `ctr --address A -n NS images ls`. */
export function listArgv(t: CtrTarget): string[] {
  return [...t.ctr, '--address', t.address, '-n', t.namespace, 'images', 'ls'];
}

export interface ImportFlags {
  /** false: --no-unpack. */
  unpack: boolean;
  /** With unpack: --snapshotter S; undefined leaves ctr's default ($CONTAINERD_SNAPSHOTTER, else containerd's). */
  snapshotter?: string | undefined;
}

/**
 * `ctr --address A -n NS images import --all-platforms [--no-unpack | --snapshotter S] -`.
 * `-` makes ctr read the archive from stdin (ctr 1.6 `images import`: `if Args().First() == "-"
 * { r = os.Stdin }`). --all-platforms keeps every child of an index (ctr otherwise walks only
 * the host's); names come from io.containerd.image.name, so --base-name is not needed.
 */
export function importArgv(t: CtrTarget, flags: ImportFlags): string[] {
  const mode = !flags.unpack ? ['--no-unpack'] : flags.snapshotter ? ['--snapshotter', flags.snapshotter] : [];
  return [...t.ctr, '--address', t.address, '-n', t.namespace, 'images', 'import', '--all-platforms', ...mode, '-'];
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
  for (const line of stdout.split('\n')) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 3 || cols[0] === '' || (cols[0] === 'REF' && cols[1] === 'TYPE')) continue;
    const [name, mediaType, digest] = cols as [string, string, string];
    if (!/^[a-z0-9]+:[A-Za-z0-9=_-]+$/.test(digest)) continue; // not a row (a warning line, say)
    rows.set(name, { name, mediaType, digest });
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
  const goArch: Record<string, string> = { x64: 'amd64', ia32: '386', arm: 'arm', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64', mips: 'mips', mipsel: 'mipsle' };
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
