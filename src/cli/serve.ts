/** `ferry serve`: OCI layouts, bundles and OCI archives as a read-only registry, until SIGINT/SIGTERM. */
import { readFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { mergeContent, type ServedContent } from '../server/content.js';
import { DEFAULT_LISTEN, mirrorNames, parseListen, startServer, type RunningServer } from '../server/server.js';
import { openServed, parseServedLocation } from '../transports/table.js';
import { FerryError, UsageError } from '../util/errors.js';

interface ServeArgs {
  sources?: string[];
  listen: string;
  'tls-cert'?: string;
  'tls-key'?: string;
  htpasswd?: string;
  scoped?: boolean;
  key?: string;
  'require-signature'?: boolean;
  json?: boolean;
}

export function serveCommand<T>(y: Argv<T>): Argv<T> {
  return y.command<ServeArgs>(
    'serve <sources..>',
    'Serve OCI layouts (a ferry store), bundles or OCI archives in place as a read-only OCI registry',
    (cmd) =>
      cmd
        .positional('sources', {
          type: 'string',
          array: true,
          describe:
            'oci:DIR[:REPO], a bundle FILE (or bundle:FILE[:REPO]) or an OCI archive (FILE or oci-archive:FILE[:REPO]); REPO serves images named by a bare tag (v1) as REPO:v1',
        })
        .option('listen', { type: 'string', default: DEFAULT_LISTEN, describe: 'address to listen on, HOST:PORT ([::1]:PORT for IPv6)' })
        .option('tls-cert', { type: 'string', describe: 'serve HTTPS with this PEM certificate (chain); needs --tls-key' })
        .option('tls-key', { type: 'string', describe: 'PEM private key for --tls-cert' })
        .option('htpasswd', {
          type: 'string',
          describe: 'require HTTP Basic auth against this htpasswd file (bcrypt entries, htpasswd -B)',
        })
        .option('scoped', {
          type: 'boolean',
          describe:
            'answer only at scoped names (docker.io/library/nginx; a port after _: 127.0.0.1_5000/app); by default each image also answers at library/nginx, where ?ns= picks the registry',
        })
        .option('key', {
          type: 'string',
          describe: 'public key (PEM): every bundle served must carry a signature that verifies with it (as ferry load --key)',
        })
        .option('require-signature', { type: 'boolean', describe: 'refuse to serve anything that is not a signed bundle (needs --key)' })
        .option('json', { type: 'boolean', describe: 'JSON lines on stdout: start-up, served images, one line per request' })
        .example('$0 serve oci:./ferry-store', 'serve a store on 127.0.0.1:5000')
        .example(
          '$0 serve oci:/media/usb/store --listen 0.0.0.0:443 --tls-cert reg.crt --tls-key reg.key --htpasswd users',
          'serve to the network',
        )
        .example('$0 serve images.ferry --key pub.pem --require-signature', 'serve a bundle only if its signature verifies')
        .example(
          '$0 serve oci:./layout:team/app',
          'serve a layout whose images are named v1, v2 as team/app:v1, …',
        ) as unknown as Argv<ServeArgs>,
    async (args) => {
      const ac = new AbortController();
      let signals = 0;
      const onSignal = (): void => {
        signals++;
        if (signals > 1) process.exit(130);
        ac.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        process.exitCode = await runServe(args, { signal: ac.signal });
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    },
  );
}

export interface ServeIo {
  /** The server runs until this is aborted. */
  signal: AbortSignal;
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  /** Called once the server is listening (tests). */
  onReady?: (server: RunningServer) => void;
}

export async function runServe(args: ServeArgs, io: ServeIo): Promise<number> {
  const out = io.stdout ?? ((t: string) => void process.stdout.write(t));
  const err = io.stderr ?? ((t: string) => void process.stderr.write(t));
  const json = !!args.json;
  const emit = (value: Record<string, unknown>): void => out(`${JSON.stringify(value)}\n`);

  // The served grammar (oci:DIR[:REPO], oci-archive:FILE[:REPO], bundle:FILE[:REPO], a bare file) is the table's.
  const specs = (args.sources ?? []).map(parseServedLocation);
  if (specs.length === 0) throw new UsageError('nothing to serve: give one or more sources: oci:DIR, or a bundle FILE');
  parseListen(args.listen);
  if (!!args['tls-cert'] !== !!args['tls-key']) throw new UsageError('--tls-cert and --tls-key go together');
  let tls: { cert: string; key: string } | undefined;
  if (args['tls-cert'] && args['tls-key']) {
    tls = { cert: await readPem(args['tls-cert'], '--tls-cert'), key: await readPem(args['tls-key'], '--tls-key') };
  }

  if (args['require-signature'] && args.key === undefined) {
    // As for ferry load: a signature can only be required if there is a key to check it with.
    throw new UsageError('--require-signature needs --key to check the signature with');
  }
  const layouts = specs.filter((s) => s.transport === 'oci');
  if (args['require-signature'] && layouts.length > 0) {
    throw new UsageError(
      `--require-signature serves signed bundles only; oci:${layouts[0]!.path} is an OCI layout, which carries no signature`,
      { hint: 'bundle the layout and sign it (ferry bundle --from-store … --sign-key KEY), or serve it without --require-signature' },
    );
  }
  const early: string[] =
    args.key !== undefined ? layouts.map((l) => `oci:${l.path}: an OCI layout carries no signature; --key does not check it`) : [];
  const signing = {
    ...(args.key !== undefined ? { key: args.key } : {}),
    ...(args['require-signature'] ? { requireSignature: true } : {}),
  };
  // Every source is opened (and each bundle verified, with its signature) before the server listens.
  const opened = await Promise.allSettled(specs.map((s) => openServed(s, { scoped: !!args.scoped, ...signing })));
  const refused = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (refused) {
    // The ones that did open are let go: nothing is served when one source is refused.
    await Promise.all(opened.map((r) => (r.status === 'fulfilled' ? r.value.close().catch(() => {}) : undefined)));
    throw refused.reason;
  }
  const sources = opened.map((r) => (r as PromiseFulfilledResult<ServedContent>).value);
  for (const w of [...early, ...sources.flatMap((s) => s.warnings)]) {
    if (json) emit({ type: 'warning', message: w });
    else err(`ferry: warning: ${w}\n`);
  }
  if (sources.every((s) => s.repositories().length === 0)) {
    throw new FerryError('SERVE_NOTHING', `nothing to serve: no named images in ${sources.map((s) => s.description).join(', ')}`, {
      hint: 'images named by a bare tag need a repository: oci:DIR:REPO, or bundle:FILE:REPO for a bundle or an OCI archive',
    });
  }

  const server = await startServer({
    sources,
    listen: args.listen,
    scoped: !!args.scoped,
    ...(tls ? { tls } : {}),
    ...(args.htpasswd ? { htpasswd: args.htpasswd } : {}),
    json,
    log: json ? (line) => out(`${line}\n`) : (line) => err(`${line}\n`),
  });
  try {
    report(server, sources, json, emit, out, !!args.htpasswd, !!args.scoped);
    io.onReady?.(server);
    if (!io.signal.aborted) await new Promise<void>((resolve) => io.signal.addEventListener('abort', () => resolve(), { once: true }));
    if (!json) err('ferry: stopping\n');
  } finally {
    await server.close();
  }
  if (json) emit({ type: 'stopped' });
  return 0;
}

async function readPem(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${flag}: cannot read ${file}: ${(e as Error).message}`);
  }
}

function report(
  server: RunningServer,
  sources: ServedContent[],
  json: boolean,
  emit: (v: Record<string, unknown>) => void,
  out: (t: string) => void,
  auth: boolean,
  scoped: boolean,
): void {
  // What clients see: the merged view (conflicts were refused before the server started).
  const merged = mergeContent(sources);
  const names = mirrorNames(merged, scoped);
  const { mirrored, local } = names.registries();
  const shared = names.shared();
  const tagsOf = (repo: string): Array<{ tag: string; digest: string }> =>
    (merged.tags(repo) ?? []).map((tag) => ({ tag, digest: merged.resolveTag(repo, tag)?.digest ?? '' }));
  const repoCount = merged.repositories().length;
  const tagCount = merged.repositories().reduce((n, r) => n + (merged.tags(r)?.length ?? 0), 0);
  if (json) {
    emit({
      type: 'listening',
      url: server.url,
      host: server.host,
      port: server.port,
      tls: server.url.startsWith('https:'),
      auth,
      sources: sources.map((s) => s.description),
      registries: mirrored.map((m) => ({ registry: m.registry, paths: m.paths })),
      shared,
    });
    for (const m of mirrored) {
      for (const r of m.repositories) {
        // `name` is how a client that is not a mirror client asks for it (the path it is listed under).
        emit({
          type: 'repository',
          name: scoped ? r.repository : r.path,
          registry: m.registry,
          scopedName: r.repository,
          tags: tagsOf(r.repository),
        });
      }
    }
    for (const repo of local) emit({ type: 'repository', name: repo, tags: tagsOf(repo) });
    return;
  }
  const extras = [server.url.startsWith('https:') ? 'TLS' : undefined, auth ? 'basic auth' : undefined].filter(Boolean);
  out(
    `Serving ${server.url} (read-only${extras.length ? `, ${extras.join(', ')}` : ''}): ${plural(repoCount, 'repository', 'repositories')}, ${plural(tagCount, 'tag', 'tags')}\n`,
  );
  const listTags = (shown: string, repo: string): void => {
    const tags = tagsOf(repo);
    if (tags.length === 0) out(`  ${shown} (no tags; by digest only)\n`);
    for (const t of tags) out(`  ${shown}:${t.tag}  ${t.digest}\n`);
  };
  for (const m of mirrored) {
    // How a mirror client reaches this registry's images: "docker.io: /v2/REPO (ns=docker.io) and /v2/docker.io/REPO".
    out(`${m.registry}: ${m.paths.length > 0 ? m.paths.join(' and ') : 'not servable'}\n`);
    for (const r of m.repositories) listTags(scoped ? r.repository : r.path, r.repository);
  }
  if (local.length > 0) {
    if (mirrored.length > 0) out('as named with their source:\n');
    for (const repo of local) listTags(repo, repo);
  }
  for (const s of shared) {
    out(
      s.withoutNs !== undefined
        ? `note: ${s.path} is held for ${s.registries.join(' and ')}: a request without ns gets ${s.withoutNs}'s (Docker's registry-mirrors), others need ?ns= or the scoped path\n`
        : `note: ${s.path} is held for ${s.registries.join(' and ')}: a request without ns is refused as ambiguous; clients need ?ns= or the scoped path\n`,
    );
  }
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}
