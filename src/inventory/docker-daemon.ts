/**
 * Inventory of Docker Engine (`docker-daemon[:SOCKET]`), read only, through the Engine API.
 * Docker's image store (the classic, graph-driver one) keeps no compressed layer blobs and no
 * manifests, only image configs (an image's ID is its config's digest) and unpacked layers. So
 * the inventory names every tagged image and every repository digest Docker recorded, claims
 * the configs as blobs, and says that layers could not be confirmed: a differential bundle for
 * Docker then carries every layer.
 */
import { isDigest, type Digest } from '../oci/digest.js';
import { DockerClient, resolveDockerEndpoint } from '../transports/docker-daemon/api.js';
import { type Collected, type CollectOptions, plural } from './collect.js';

export interface DockerInventoryOptions extends CollectOptions {
  socket: string | undefined;
}

/** The images and blobs `GET /images/json` lets one say, pure (tested without a daemon). */
export function fromImageList(list: ReadonlyArray<{ Id: string; RepoTags?: string[] | null; RepoDigests?: string[] | null }>): Collected {
  const images = new Map<string, Digest>();
  const blobs = new Set<Digest>();
  let byId = 0;
  for (const img of list) {
    if (!isDigest(img.Id)) continue;
    blobs.add(img.Id);
    for (const rd of img.RepoDigests ?? []) {
      const at = rd.lastIndexOf('@');
      const digest = rd.slice(at + 1);
      if (at > 0 && isDigest(digest)) images.set(rd, digest);
    }
    for (const tag of img.RepoTags ?? []) {
      if (tag === '<none>:<none>' || images.has(tag)) continue;
      images.set(tag, img.Id);
      byId++;
    }
  }
  const notes = [
    'Docker Engine keeps no compressed layers or manifests: layers could not be confirmed (a differential bundle for Docker carries every layer); blobs are image configs (image IDs)',
  ];
  if (byId) {
    notes.push(
      `${plural(byId, 'tagged name')} recorded at the image ID (the config digest), not a manifest digest: Docker keeps no manifest for a loaded image; names REPO@sha256:… carry the manifest digests Docker recorded when it pulled`,
    );
  }
  return { images: [...images].map(([name, digest]) => ({ name, digest })), blobs: [...blobs], notes };
}

export async function collectDockerDaemon(opts: DockerInventoryOptions): Promise<Collected> {
  const client = await DockerClient.connect(resolveDockerEndpoint(opts.socket), opts.signal);
  return fromImageList(await client.listImages(opts.signal));
}
