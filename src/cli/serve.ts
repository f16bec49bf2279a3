/** `ferry serve`: OCI layouts, bundles and OCI archives as a read-only registry, until SIGINT/SIGTERM. */
import { readFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { mergeContent, type ServedContent } from '../server/content.js';
import { DEFAULT_LISTEN, parseListen, startServer, type RunningServer } from '../server/server.js';
import { openServed, parseServedLocation } from '../transports/table.js';
import { FerryError, UsageError } from '../util/errors.js';

interface ServeArgs {
  sources?: string[];
  listen: string;
  'tls-cert'?: string;
  'tls-key'?: string;
  htpasswd?: string;
  scoped?: boolean;
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
            'keep the registry host in repository names (docker.io/library/nginx instead of library/nginx; a port after _: 127.0.0.1_5000/app)',
        })
        .option('json', { type: 'boolean', describe: 'JSON lines on stdout: start-up, served images, one line per request' })
        .example('$0 serve oci:./ferry-store', 'serve a store on 127.0.0.1:5000')
        .example(
          '$0 serve oci:/media/usb/store --listen 0.0.0.0:443 --tls-cert reg.crt --tls-key reg.key --htpasswd users',
          'serve to the network',
        )
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

  const sources: ServedContent[] = await Promise.all(specs.map((s) => openServed(s, { scoped: !!args.scoped })));
  for (const w of sources.flatMap((s) => s.warnings)) {
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
    ...(tls ? { tls } : {}),
    ...(args.htpasswd ? { htpasswd: args.htpasswd } : {}),
    json,
    log: json ? (line) => out(`${line}\n`) : (line) => err(`${line}\n`),
  });
  try {
    report(server, sources, json, emit, out, !!args.htpasswd);
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
): void {
  // What clients see: the merged view (conflicts were refused before the server started).
  const merged = mergeContent(sources);
  const repos = new Map<string, Array<{ tag: string; digest: string }>>();
  for (const repo of merged.repositories()) {
    const tags = (merged.tags(repo) ?? []).map((tag) => ({ tag, digest: merged.resolveTag(repo, tag)?.digest ?? '' }));
    repos.set(repo, tags);
  }
  const names = [...repos.keys()];
  const tagCount = [...repos.values()].reduce((n, l) => n + l.length, 0);
  if (json) {
    emit({
      type: 'listening',
      url: server.url,
      host: server.host,
      port: server.port,
      tls: server.url.startsWith('https:'),
      auth,
      sources: sources.map((s) => s.description),
    });
    for (const name of names) {
      const tags = repos.get(name)!;
      emit({ type: 'repository', name, tags });
    }
    return;
  }
  const extras = [server.url.startsWith('https:') ? 'TLS' : undefined, auth ? 'basic auth' : undefined].filter(Boolean);
  out(
    `Serving ${server.url} (read-only${extras.length ? `, ${extras.join(', ')}` : ''}): ${plural(names.length, 'repository', 'repositories')}, ${plural(tagCount, 'tag', 'tags')}\n`,
  );
  for (const name of names) {
    const tags = repos.get(name)!;
    if (tags.length === 0) out(`  ${name} (no tags; by digest only)\n`);
    for (const t of tags) out(`  ${name}:${t.tag}  ${t.digest}\n`);
  }
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}
