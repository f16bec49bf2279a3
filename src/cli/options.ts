/** Flags shared by commands that talk to registries: auth and TLS. */
import { stat } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { loadDockerConfig, type Credential, type CredentialSource } from '../auth/index.js';
import { readImageList } from '../commands/image-list.js';
import { parsePlatform, type PlatformSpec } from '../oci/platform.js';
import { parseShard, type ShardSpec } from '../copy/shard.js';
import { UsageError } from '../util/errors.js';
import { bundleInputKind } from '../util/fsutil.js';

export interface RegistryFlags {
  username?: string;
  'password-stdin'?: boolean;
  'auth-registry'?: string;
  authfile?: string;
  insecure?: boolean;
  'insecure-registry'?: string[];
  'ca-file'?: string[];
  'certs-dir'?: string[];
}

export function registryFlags<T>(y: Argv<T>): Argv<T & RegistryFlags> {
  return (
    y
      .option('username', { type: 'string', describe: 'registry user name (password read from stdin with --password-stdin)' })
      .option('password-stdin', { type: 'boolean', describe: 'read the password or token for --username from stdin' })
      .option('auth-registry', {
        type: 'string',
        describe:
          'the registry --username is for (default: the one registry the command talks to; mirror: the destination); others use config.json',
      })
      .option('authfile', {
        type: 'string',
        describe: 'docker config.json with credentials (default $DOCKER_CONFIG/config.json, ~/.docker/config.json, else ~/.dockercfg)',
      })
      .option('insecure', {
        type: 'boolean',
        describe: 'allow plain HTTP and unverified registries (loopback registries may always use HTTP)',
      })
      // Every repeatable option takes exactly one value per use (nargs 1): an array option would
      // otherwise swallow the references after it (`--insecure-registry HOST REF…`).
      .option('insecure-registry', {
        type: 'string',
        array: true,
        nargs: 1,
        describe: 'for this registry host[:port] only: skip TLS verification, and fall back to plain HTTP when it has no TLS',
      })
      .option('ca-file', { type: 'string', array: true, nargs: 1, describe: 'extra CA certificate (PEM) to trust' })
      .option('certs-dir', {
        type: 'string',
        array: true,
        nargs: 1,
        describe: 'per-host certificate directories (default /etc/docker/certs.d and /etc/containers/certs.d)',
      })
      .group(
        ['username', 'password-stdin', 'auth-registry', 'authfile', 'insecure', 'insecure-registry', 'ca-file', 'certs-dir'],
        'Registry access:',
      ) as Argv<T & RegistryFlags>
  );
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export interface RegistryAccess {
  credentials?: CredentialSource;
  staticCredential?: Credential;
  staticCredentialRegistry?: string;
  insecure?: boolean | string[];
  caFiles?: string[];
  certsDirs?: string[];
}

export async function registryAccess(flags: RegistryFlags, stdinTaken = false): Promise<RegistryAccess> {
  const out: RegistryAccess = {};
  if (flags['password-stdin'] && !flags.username) throw new UsageError('--password-stdin needs --username');
  if (flags['auth-registry'] !== undefined && !flags.username)
    throw new UsageError('--auth-registry names the registry --username is for; give --username too');
  if (flags.username) {
    if (!flags['password-stdin']) throw new UsageError('--username needs --password-stdin (passwords are never taken on the command line)');
    if (stdinTaken) throw new UsageError('--password-stdin cannot be used when the image list is read from stdin');
    const password = (await readAllStdin()).replace(/\r?\n$/, '');
    if (password === '') throw new UsageError('--password-stdin: no password on stdin');
    // For one registry only (bindStaticCredential); every other registry keeps config.json.
    out.staticCredential = { kind: 'basic', username: flags.username, password };
    if (flags['auth-registry'] !== undefined) out.staticCredentialRegistry = flags['auth-registry'];
  }
  out.credentials = await loadDockerConfig(flags.authfile ? { path: flags.authfile } : {});
  if (flags.insecure) out.insecure = true;
  else if (flags['insecure-registry']?.length) out.insecure = flags['insecure-registry'];
  if (flags['ca-file']?.length) out.caFiles = flags['ca-file'];
  if (flags['certs-dir']?.length) out.certsDirs = flags['certs-dir'];
  return out;
}

export function checkConcurrency(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new UsageError(`--concurrency must be an integer from 1 to 64, got ${String(n)}`);
  return n;
}

/** `--platform`, as pull, load and mirror take it (repeatable, or comma-separated). */
export const PLATFORM_OPTION = {
  type: 'string',
  array: true,
  nargs: 1,
  describe: 'only this platform of multi-platform images, OS/ARCH[/VARIANT]; repeatable (default: all)',
} as const;

export function platformsOf(flags: string[] | undefined): PlatformSpec[] | undefined {
  return flags?.length ? flags.flatMap((p) => p.split(',')).map((p) => parsePlatform(p.trim())) : undefined;
}

/** `-f LIST`, as pull and bundle take it. */
export const IMAGE_LIST_OPTION = {
  alias: 'f',
  type: 'string',
  array: true,
  nargs: 1,
  describe: 'image list: one reference per line, # comments (- for stdin)',
} as const;

/** `-p PROFILE`, `--lock LOCK`, `--keep-going`: as pull, bundle, mirror and plan take them. */
export interface ImageSetFlags {
  profile?: string[];
  lock?: string;
  'keep-going'?: boolean;
}

export function imageSetFlags<T>(y: Argv<T>, keepGoing = true): Argv<T & ImageSetFlags> {
  const out = y
    .option('profile', {
      alias: 'p',
      type: 'string',
      array: true,
      nargs: 1,
      describe: 'an image-set profile (YAML, see profiles/); repeatable',
    })
    .option('lock', { type: 'string', describe: 'carry exactly what this lock file (ferry plan -o) pinned; nothing is re-resolved' });
  return (
    keepGoing
      ? out.option('keep-going', {
          type: 'boolean',
          describe: 'carry what resolved when some images do not, list the rest (exit 1); default: stop before transferring anything',
        })
      : out
  ) as Argv<T & ImageSetFlags>;
}

/** The references named on the command line followed by those of every -f LIST, in order. */
export async function collectRefs(positional: string[] | undefined, lists: string[] | undefined): Promise<string[]> {
  const refs = [...(positional ?? [])];
  for (const f of lists ?? []) refs.push(...(await readImageList(f)));
  return refs;
}

/** A bundle file argument that must exist (not stdin): a usage error naming it, not a raw ENOENT. */
export async function requireBundleFile(file: string, directoryHint = `for an OCI layout use oci:${file}`): Promise<void> {
  const st = await stat(file).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  if (!st) throw new UsageError(`${file}: no such bundle file`, { hint: 'give a bundle written by ferry bundle, or - for stdin' });
  if (st.isDirectory()) throw new UsageError(`${file} is a directory`, { hint: directoryHint });
  // A device (a symlink to /dev/zero) never ends: only regular files and FIFOs are read.
  await bundleInputKind(file);
}

/** --shard K/N on pull, bundle, mirror and plan (copy/shard.ts). */
export const SHARD_OPTION = {
  type: 'string',
  describe:
    'carry only shard K of N (1-based, N ≤ 1000) of the planned images: the same partition on every machine for the same plan; images sharing layers stay together',
} as const;

/** --shard → ShardSpec (usage error, exit 2, when malformed). */
export function shardOf(value: string | undefined): ShardSpec | undefined {
  return value === undefined ? undefined : parseShard(value);
}
