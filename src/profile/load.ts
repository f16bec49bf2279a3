/**
 * Reading profiles: YAML with positions, the schema, `include:` (relative paths, cycles refused,
 * each file read once), `${VAR}` in references, and every field checked up front, so that a
 * mistake is reported with file:line:column and the field before anything is contacted.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import semver from 'semver';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { Digest } from '../oci/digest.js';
import { parsePlatform, type PlatformSpec } from '../oci/platform.js';
import { parseNormalizedNamed, type Reference } from '../ref/reference.js';
import { errorMessage, FerryError } from '../util/errors.js';
import type { z } from '../util/zod.js';
import { PROFILE_LIMITS, ProfileSchema, type Profile, type ProfileImage } from './schema.js';

/** A profile that cannot be read or is not valid: exit 2, naming the file, the position and the field. */
export class ProfileError extends FerryError {
  override readonly exitCode = 2 as const;
  readonly file: string;
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly field: string | undefined;
  constructor(
    at: { file: string; line?: number | undefined; column?: number | undefined; field?: string | undefined },
    message: string,
    options: { hint?: string; cause?: unknown } = {},
  ) {
    const where = `${at.file}${at.line !== undefined ? `:${at.line}:${at.column ?? 1}` : ''}`;
    super('PROFILE_INVALID', `${where}: ${at.field ? `${at.field}: ` : ''}${message}`, options);
    this.file = at.file;
    this.line = at.line;
    this.column = at.column;
    this.field = at.field;
  }
}

/** A tag filter ready to apply: regexes compiled (anchored), the range parsed. */
export interface CompiledTagFilter {
  allow?: RegExp[];
  deny?: RegExp[];
  semver?: string;
  prerelease?: boolean;
  latest?: number;
}

/** One image entry of a profile, checked and normalised. */
export interface ProfileEntry {
  /** `profiles/site.yaml:12:5`: where the entry was written, for messages. */
  where: string;
  /** The profile file it comes from (as shown) and its position in that file's images. */
  file: string;
  index: number;
  /** As written (after ${VAR} replacement), for messages. */
  written: string;
  /** Normalised; no default tag added (a repository entry has neither tag nor digest). */
  ref: Reference;
  kind: 'tag' | 'digest' | 'repository';
  tags?: CompiledTagFilter;
  /** Undefined: every platform the image has. */
  platforms?: PlatformSpec[];
  /** The repository the image is named as (normalised, no tag or digest). */
  target?: Reference;
}

export interface LoadedProfileFile {
  /** As given or as reached by include, relative to the working directory when inside it. */
  file: string;
  name: string;
  /** sha256 of the file's bytes. */
  digest: Digest;
}

export interface ImageSet {
  /** The files read, roots first in the order given, then includes in the order reached. */
  files: LoadedProfileFile[];
  /** metadata.name of every root profile, in order. */
  names: string[];
  entries: ProfileEntry[];
}

export interface LoadProfilesOptions {
  /** For ${VAR}; default process.env. */
  env?: Record<string, string | undefined>;
}

/** Read the profiles named on the command line, with their includes. */
export async function loadProfiles(paths: string[], opts: LoadProfilesOptions = {}): Promise<ImageSet> {
  const env = opts.env ?? process.env;
  const files: LoadedProfileFile[] = [];
  const entries: ProfileEntry[] = [];
  const names: string[] = [];
  const loaded = new Set<string>();
  // Depth-first over includes with an explicit stack (never the input's depth in recursion):
  // `active` holds the chain being read, for cycle detection.
  for (const root of paths) {
    const rootAbs = path.resolve(root);
    if (loaded.has(rootAbs)) continue;
    const first = await readProfile(rootAbs, undefined, env);
    names.push(first.profile.metadata.name);
    const stack: Array<{ file: ParsedProfile; next: number }> = [{ file: first, next: 0 }];
    const active = new Set<string>([rootAbs]);
    loaded.add(rootAbs);
    files.push(first.info);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const includes = top.file.profile.include ?? [];
      if (top.next < includes.length) {
        const i = top.next++;
        const target = path.resolve(path.dirname(top.file.abs), includes[i]!);
        const at = top.file.position(['include', i]);
        if (active.has(target)) {
          const chain = [...stack.map((s) => s.file.info.file), display(target)].join(' → ');
          throw new ProfileError({ ...at, field: `include[${i}]` }, `include cycle: ${chain}`);
        }
        if (loaded.has(target)) continue;
        if (stack.length >= PROFILE_LIMITS.maxIncludeDepth) {
          throw new ProfileError({ ...at, field: `include[${i}]` }, `includes nested more than ${PROFILE_LIMITS.maxIncludeDepth} deep`);
        }
        if (loaded.size >= PROFILE_LIMITS.maxFiles) {
          throw new ProfileError({ ...at, field: `include[${i}]` }, `more than ${PROFILE_LIMITS.maxFiles} profile files in one run`);
        }
        const child = await readProfile(target, { ...at, field: `include[${i}]` }, env);
        loaded.add(target);
        active.add(target);
        files.push(child.info);
        stack.push({ file: child, next: 0 });
        continue;
      }
      // Every include of this file is in: its own images follow theirs.
      stack.pop();
      active.delete(top.file.abs);
      for (const e of top.file.entries) {
        if (entries.length >= PROFILE_LIMITS.maxImages) {
          throw new ProfileError({ file: top.file.info.file }, `more than ${PROFILE_LIMITS.maxImages} image entries in one run`);
        }
        entries.push(e);
      }
    }
  }
  return { files, names, entries };
}

interface ParsedProfile {
  abs: string;
  info: LoadedProfileFile;
  profile: Profile;
  entries: ProfileEntry[];
  position(p: Array<string | number>): { file: string; line?: number; column?: number };
}

function display(abs: string): string {
  const rel = path.relative(process.cwd(), abs);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : abs;
}

async function readProfile(
  abs: string,
  from: { file: string; line?: number; column?: number; field?: string } | undefined,
  env: Record<string, string | undefined>,
): Promise<ParsedProfile> {
  const file = display(abs);
  const cannot = (message: string, cause?: unknown): ProfileError =>
    from
      ? new ProfileError(from, `cannot read included profile ${file}: ${message}`, cause === undefined ? {} : { cause })
      : new ProfileError({ file }, `cannot read profile: ${message}`, cause === undefined ? {} : { cause });
  const st = await stat(abs).catch((err: NodeJS.ErrnoException) => {
    throw cannot(err.code === 'ENOENT' ? 'no such file' : errorMessage(err), err);
  });
  if (!st.isFile()) throw cannot(st.isDirectory() ? 'it is a directory' : 'not a regular file');
  if (st.size > PROFILE_LIMITS.maxFileBytes) throw cannot(`${st.size} bytes, over the ${PROFILE_LIMITS.maxFileBytes}-byte limit`);
  const bytes = await readFile(abs).catch((err: unknown) => {
    throw cannot(errorMessage(err), err);
  });
  if (bytes.length > PROFILE_LIMITS.maxFileBytes) throw cannot(`over the ${PROFILE_LIMITS.maxFileBytes}-byte limit`);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
  const text = bytes.toString('utf8');
  const lines = new LineCounter();
  // Aliases are capped (a billion-laughs document expands before the schema could refuse it);
  // one YAML document per file: a second one would be silently ignored otherwise.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined): { line?: number; column?: number } => {
    if (offset === undefined) return {};
    const p = lines.linePos(offset);
    return { line: p.line, column: p.col };
  };
  const yamlError = doc.errors[0];
  if (yamlError) {
    throw new ProfileError({ file, ...at(yamlError.pos[0]) }, `not valid YAML: ${firstLine(yamlError.message)}`);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ProfileError({ file }, `not valid YAML: ${errorMessage(err)}`);
  }
  const position = (p: Array<string | number>): { file: string; line?: number; column?: number } => ({
    file,
    ...at(nodeAt(doc, p)?.range?.[0]),
  });
  if (value === null || value === undefined)
    throw new ProfileError({ file, line: 1, column: 1 }, 'empty profile (want apiVersion: ferry/v1, kind: ImageSet)');
  const parsed = ProfileSchema.safeParse(value);
  if (!parsed.success) throw schemaError(doc, file, parsed.error.issues, at);
  const profile = parsed.data;
  const defaults = profile.platforms?.map((p, i) => {
    try {
      return parsePlatform(p);
    } catch (err) {
      throw new ProfileError({ ...position(['platforms', i]), field: `platforms[${i}]` }, errorMessage(err));
    }
  });
  const entries = (profile.images ?? []).map((image, index) =>
    checkEntry(image, index, file, env, defaults, (p) => position(['images', index, ...p])),
  );
  return { abs, info: { file, name: profile.metadata.name, digest }, profile, entries, position };
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

/** The YAML node at a path, or the deepest node on the way there (a missing key: its map). */
function nodeAt(doc: Document, p: ReadonlyArray<string | number>): Node | undefined {
  let node: unknown = doc.contents;
  for (const key of p) {
    if (isMap(node)) {
      const pair = node.items.find((it) => isScalar(it.key) && it.key.value === key);
      if (!pair) return node;
      node = pair.value ?? pair.key;
    } else if (isSeq(node) && typeof key === 'number') {
      const item = node.items[key];
      if (item === undefined) return node;
      node = item;
    } else {
      break;
    }
  }
  return node as Node | undefined;
}

function fieldName(p: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const k of p) out += typeof k === 'number' ? `[${k}]` : out === '' ? String(k) : `.${String(k)}`;
  return out === '' ? '(document)' : out;
}

function schemaError(
  doc: Document,
  file: string,
  issues: z.core.$ZodIssue[],
  at: (offset: number | undefined) => { line?: number; column?: number },
): ProfileError {
  const issue = issues[0]!;
  let p: Array<string | number> = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    // Point at the unknown key itself, and say which keys the place takes.
    const key = issue.keys[0]!;
    p = [...p, key];
    message = `unknown field ${JSON.stringify(key)}`;
  } else if (issue.code === 'invalid_type' && nodeAt(doc, p) !== undefined && !hasPath(doc, p)) {
    message = `missing (${issue.message})`;
  }
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length === 2 ? '' : 's'})` : '';
  return new ProfileError({ file, ...at(nodeAt(doc, p)?.range?.[0]), field: fieldName(p) }, `${message}${more}`, {
    hint: 'profiles/schema.json describes every field (editors that read # yaml-language-server: $schema=… check as you type)',
  });
}

function hasPath(doc: Document, p: ReadonlyArray<string | number>): boolean {
  return doc.hasIn(p);
}

/** ${VAR}, ${VAR:-default} and $$ (a literal $), as docker compose reads them. */
export function interpolate(s: string, env: Record<string, string | undefined>): string {
  return s.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?/g,
    (m, name: string | undefined, dflt: string | undefined) => {
      if (m === '$$') return '$';
      if (name === undefined) throw new Error(`${JSON.stringify(m)} is not a variable reference (want \${NAME} or \${NAME:-default})`);
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (dflt !== undefined) return dflt;
      throw new Error(`environment variable ${name} is not set (write \${${name}:-default} for a default)`);
    },
  );
}

function checkEntry(
  image: ProfileImage,
  index: number,
  file: string,
  env: Record<string, string | undefined>,
  defaults: PlatformSpec[] | undefined,
  position: (p: Array<string | number>) => { file: string; line?: number; column?: number },
): ProfileEntry {
  const field = (p: Array<string | number>): string => fieldName(['images', index, ...p]);
  const fail = (p: Array<string | number>, message: string, hint?: string): ProfileError =>
    new ProfileError({ ...position(p), field: field(p) }, message, hint ? { hint } : {});
  let written: string;
  try {
    written = interpolate(image.ref, env);
  } catch (err) {
    throw fail(['ref'], errorMessage(err));
  }
  const bare = written.startsWith('docker://') ? written.slice('docker://'.length) : written;
  let ref: Reference;
  try {
    ref = parseNormalizedNamed(bare);
  } catch (err) {
    throw fail(['ref'], errorMessage(err));
  }
  const kind = ref.digest !== undefined ? 'digest' : ref.tag !== undefined ? 'tag' : 'repository';
  const pos = position([]);
  const entry: ProfileEntry = {
    where: `${pos.file}${pos.line !== undefined ? `:${pos.line}:${pos.column ?? 1}` : ''}`,
    file,
    index,
    written,
    ref,
    kind: image.tags ? 'repository' : kind === 'repository' ? 'tag' : kind,
  };
  if (image.tags) {
    if (kind !== 'repository') {
      throw fail(
        ['tags'],
        `${written} names a ${kind}; tag filters choose the tags of a repository`,
        `write the repository alone: ref: ${ref.name}`,
      );
    }
    const t = image.tags;
    const compiled: CompiledTagFilter = {};
    const compile = (which: 'allow' | 'deny'): RegExp[] | undefined =>
      t[which]?.map((pattern, i) => {
        try {
          // Anchored: a pattern matches the whole tag, as regclient and skopeo sync read them.
          return new RegExp(`^(?:${pattern})$`);
        } catch (err) {
          throw fail(['tags', which, i], `invalid regular expression ${JSON.stringify(pattern)}: ${errorMessage(err)}`);
        }
      });
    const allow = compile('allow');
    const deny = compile('deny');
    if (allow) compiled.allow = allow;
    if (deny) compiled.deny = deny;
    if (t.semver !== undefined) {
      if (semver.validRange(t.semver) === null) {
        throw fail(
          ['tags', 'semver'],
          `invalid semver range ${JSON.stringify(t.semver)}`,
          'npm range syntax: ">=7.2 <8", "^1.27", "~3.4.1", "1.x || 2.x"',
        );
      }
      compiled.semver = t.semver;
    }
    if (t.prerelease !== undefined) compiled.prerelease = t.prerelease;
    if (t.latest !== undefined) compiled.latest = t.latest;
    entry.tags = compiled;
  } else if (kind === 'repository') {
    // A repository alone means its latest tag, as `docker pull` and -f lists read it.
    entry.ref = parseNormalizedNamed(`${ref.name}:latest`);
  }
  if (defaults && !image.platforms) entry.platforms = defaults;
  if (image.platforms) {
    entry.platforms = image.platforms.map((p, i) => {
      try {
        return parsePlatform(p);
      } catch (err) {
        throw fail(['platforms', i], errorMessage(err));
      }
    });
  }
  if (image.target !== undefined) {
    let target: Reference;
    try {
      target = parseNormalizedNamed(interpolate(image.target, env));
    } catch (err) {
      throw fail(['target'], errorMessage(err));
    }
    if (target.tag !== undefined || target.digest !== undefined) {
      throw fail(['target'], `${image.target} has a tag or digest; target names a repository (the image keeps its tag or digest)`);
    }
    entry.target = target;
  }
  return entry;
}
