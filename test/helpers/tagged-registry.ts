/**
 * Registry content for tag tests, pushed through ferry's own client (so token auth works as for
 * any push): a tiny one-layer image tagged many times, and a paginating proxy in front of a real
 * registry (distribution 2.8 answers tags/list with every tag at once).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { RegistryClient } from '../../src/transports/registry/client.js';
import { listenLoopback } from '../harness/net.js';
import { trackResource } from '../harness/temp.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A one-layer image (content is never unpacked here, only its digests matter). */
export function tinyImage(content = 'tag listing test layer\n'): { config: Buffer; layer: Buffer; manifest: Buffer } {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: {} }));
  const layer = Buffer.from(content);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
    }),
  );
  return { config, layer, manifest };
}

/**
 * Push the tiny image to `repo` once and tag it with every tag (the manifest PUT again under each),
 * through ferry's own client, so token auth is done as for any push.
 */
export async function pushTagged(client: RegistryClient, repo: string, tags: readonly string[], content?: string): Promise<string> {
  const img = tinyImage(content);
  await uploadBlobs(client, repo, [img.config, img.layer]);
  for (const tag of tags) await putManifest(client, repo, tag, img.manifest);
  return sha256(img.manifest);
}

/** Monolithic uploads (POST, then one PUT with the digest), as any client may do. */
async function uploadBlobs(client: RegistryClient, repo: string, blobs: readonly Buffer[]): Promise<void> {
  const scope = `repository:${repo}:pull,push`;
  for (const blob of blobs) {
    const started = await client.send({ method: 'POST', path: `/v2/${repo}/blobs/uploads/`, scope, expect: [202], what: 'test upload' });
    started.body.resume();
    const location = new URL(started.headers.location as string, started.url);
    location.searchParams.set('digest', sha256(blob));
    const done = await client.send({
      method: 'PUT',
      path: location.toString(),
      scope,
      headers: { 'content-type': 'application/octet-stream' },
      body: blob,
      contentLength: blob.length,
      expect: [201],
      what: 'test upload',
    });
    done.body.resume();
  }
}

async function putManifest(client: RegistryClient, repo: string, tag: string, manifest: Buffer): Promise<void> {
  const res = await client.send({
    method: 'PUT',
    path: `/v2/${repo}/manifests/${tag}`,
    scope: `repository:${repo}:pull,push`,
    headers: { 'content-type': OCI_MANIFEST },
    body: manifest,
    contentLength: manifest.length,
    expect: [201],
    what: `test tag ${tag}`,
  });
  res.body.resume();
}

export type PagingMode =
  /** Honest pages of 7 with a relative Link (`n` and `last`). */
  | 'pages'
  /** The second page's Link names the second page again. */
  | 'loop'
  /** The second page's Link names a new URL that answers the same page again (and names another such URL). */
  | 'stall'
  /** The first page's Link is absolute and points at another origin. */
  | 'foreign'
  /** One tag of the real list replaced by one outside the grammar. */
  | 'invalid-tag';

export interface PagingProxy {
  url: string;
  host: string;
  mode: PagingMode;
  /** Path and query of every tags/list request, in order. */
  tagRequests: string[];
  stop(): Promise<void>;
}

/**
 * A proxy in front of the real registry: `/v2/` is forwarded; `tags/list` fetches the repository's
 * full list from the registry and answers the page after `last`, 7 tags at most, in the mode set.
 */
export async function startPagingProxy(target: string): Promise<PagingProxy> {
  const PAGE = 7;
  const proxy: PagingProxy = { url: '', host: '', mode: 'pages', tagRequests: [], stop: async () => {} };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://proxy.invalid');
    const m = /^\/v2\/(.+)\/tags\/list$/.exec(url.pathname);
    if (!m) {
      // Reads only (GET/HEAD), with the Accept header a manifest request needs.
      const up = await fetch(`${target}${url.pathname}${url.search}`, {
        method: req.method ?? 'GET',
        headers: req.headers.accept ? { accept: req.headers.accept } : {},
      });
      const body = Buffer.from(await up.arrayBuffer());
      const digest = up.headers.get('docker-content-digest');
      res.writeHead(up.status, {
        'content-type': up.headers.get('content-type') ?? 'application/json',
        'content-length': body.length,
        ...(digest ? { 'docker-content-digest': digest } : {}),
      });
      res.end(body);
      return;
    }
    proxy.tagRequests.push(`${url.pathname}${url.search}`);
    const up = await fetch(`${target}/v2/${m[1]}/tags/list`);
    const upBody = Buffer.from(await up.arrayBuffer());
    if (up.status !== 200) {
      res.writeHead(up.status, { 'content-type': 'application/json', 'content-length': upBody.length });
      res.end(upBody);
      return;
    }
    const all = ((JSON.parse(upBody.toString()) as { tags: string[] | null }).tags ?? []).sort();
    if (proxy.mode === 'invalid-tag') all[3] = 'not a tag';
    const last = url.searchParams.get('last');
    const from = last === null ? 0 : all.filter((t) => t <= last).length;
    const tags = all.slice(from, from + PAGE);
    const headers: Record<string, string | number> = { 'content-type': 'application/json' };
    const hasMore = from + PAGE < all.length;
    const isSecondPage = last !== null && from === PAGE;
    const next = `/v2/${m[1]}/tags/list?n=${PAGE}&last=${encodeURIComponent(tags.at(-1) ?? '')}`;
    if (proxy.mode === 'foreign' && last === null) {
      headers.link = `<http://127.0.0.2:1${next}>; rel="next"`;
    } else if (proxy.mode === 'loop' && isSecondPage) {
      headers.link = `<${url.pathname}${url.search}>; rel="next"`;
    } else if (proxy.mode === 'stall' && isSecondPage) {
      headers.link = `<${url.pathname}?n=${PAGE}&last=${encodeURIComponent(last)}&again=${Number(url.searchParams.get('again') ?? 0) + 1}>; rel="next"`;
    } else if (hasMore) {
      headers.link = `<${next}>; rel="next"`;
    }
    const body = Buffer.from(JSON.stringify({ name: m[1], tags }));
    headers['content-length'] = body.length;
    res.writeHead(200, headers);
    res.end(body);
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  });
  const port = await listenLoopback(server);
  proxy.host = `127.0.0.1:${port}`;
  proxy.url = `http://${proxy.host}`;
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      untrack();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  const untrack = trackResource({ description: `paging proxy ${proxy.url} -> ${target}`, stop });
  proxy.stop = stop;
  return proxy;
}

/**
 * Push an image of the given layers (each its own blob, gzip media type; content is never
 * unpacked by these tests) and tag it; returns the manifest digest and its blobs.
 */
export async function pushLayers(
  client: RegistryClient,
  repo: string,
  tag: string,
  layers: readonly Buffer[],
): Promise<{ digest: string; config: string; layers: string[]; bytes: number }> {
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Labels: { tag } } }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(l), size: l.length })),
    }),
  );
  await uploadBlobs(client, repo, [config, ...layers]);
  await putManifest(client, repo, tag, manifest);
  return {
    digest: sha256(manifest),
    config: sha256(config),
    layers: layers.map(sha256),
    bytes: config.length + manifest.length + layers.reduce((n, l) => n + l.length, 0),
  };
}
