/**
 * Error classes for all of ferry. Every error has a stable `code` callers may branch on
 * (never branch on message text) and an exit code the CLI boundary maps it to.
 * Wrap with context at each layer via `wrap()`; the chain stays available as `cause`.
 */

export type ExitCode = 0 | 1 | 2 | 3;

export interface FerryErrorOptions {
  cause?: unknown;
  /** A retry of the same operation may succeed (network blips, 429, 5xx). */
  retryable?: boolean;
  /** What the user can do about it; printed on its own line by the CLI. */
  hint?: string;
}

export class FerryError extends Error {
  readonly code: string;
  readonly exitCode: ExitCode = 1;
  readonly retryable: boolean;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: FerryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.hint = options.hint;
  }
}

/** Bad flags or arguments. */
export class UsageError extends FerryError {
  override readonly exitCode = 2 as const;
  constructor(message: string, options?: FerryErrorOptions) {
    super('USAGE', message, options);
  }
}

/** A reference string that does not follow the Docker/OCI grammar. `code` is one of the REFERENCE_* codes. */
export class InvalidReferenceError extends FerryError {
  override readonly exitCode = 2 as const;
  readonly input: string;
  constructor(code: ReferenceErrorCode, input: string, message: string) {
    super(code, message);
    this.input = input;
  }
}
export type ReferenceErrorCode =
  | 'REFERENCE_INVALID_FORMAT'
  | 'REFERENCE_TAG_INVALID_FORMAT'
  | 'REFERENCE_DIGEST_INVALID_FORMAT'
  | 'REFERENCE_NAME_CONTAINS_UPPERCASE'
  | 'REFERENCE_NAME_EMPTY'
  | 'REFERENCE_NAME_TOO_LONG'
  | 'REFERENCE_NAME_NOT_CANONICAL'
  | 'REFERENCE_DIGEST_UNSUPPORTED'
  | 'REFERENCE_DIGEST_INVALID_LENGTH';

/** Content does not match its digest or declared size. Integrity problems exit 3. */
export class IntegrityError extends FerryError {
  override readonly exitCode = 3 as const;
}
export class DigestMismatchError extends IntegrityError {
  constructor(
    readonly expected: string,
    readonly actual: string,
    what: string,
  ) {
    super('DIGEST_MISMATCH', `${what}: digest mismatch: expected ${expected}, got ${actual}`);
  }
}
export class SizeMismatchError extends IntegrityError {
  constructor(
    readonly expected: number,
    readonly actual: number,
    what: string,
  ) {
    super('SIZE_MISMATCH', `${what}: size mismatch: expected ${expected} bytes, got ${actual}`);
  }
}

/**
 * Nothing was named because some content of the same source failed its check (a bundle that
 * fails verification loads nothing). Exit 3, like the failure it reports.
 */
export class NotLoadedError extends IntegrityError {
  constructor(cause: unknown) {
    super('NOT_LOADED', `not loaded: the source failed verification (${cause instanceof Error ? cause.message : String(cause)})`, {
      cause,
      hint: 'nothing was named at the destination; check the source with ferry verify',
    });
  }
}

/** A container engine's socket cannot be reached: not running, wrong path, no permission. */
export class DaemonUnavailableError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('DAEMON_UNAVAILABLE', message, options);
  }
}

/** A document we cannot or will not handle (schema1, unknown media type, bad JSON). */
export class ManifestError extends FerryError {}
export class UnsupportedMediaTypeError extends ManifestError {
  constructor(
    readonly mediaType: string,
    what: string,
  ) {
    super('UNSUPPORTED_MEDIA_TYPE', `${what}: unsupported media type ${JSON.stringify(mediaType)}`);
  }
}
export class Schema1UnsupportedError extends ManifestError {
  constructor(what: string) {
    super('SCHEMA1_UNSUPPORTED', `${what}: Docker schema1 manifests are not supported (deprecated; Docker Engine 28+ refuses them too)`, {
      hint: 'rebuild or re-push the image with a current client so it has a schema2 or OCI manifest',
    });
  }
}
export class InvalidManifestError extends ManifestError {
  constructor(what: string, detail: string, options?: FerryErrorOptions) {
    super('MANIFEST_INVALID', `${what}: invalid manifest: ${detail}`, options);
  }
}

/** OCI image layout problems (missing index.json, missing blob, ambiguous ref...). */
export class LayoutError extends FerryError {}

/** Something asked for does not exist (tag, manifest, blob, ref in a layout). */
export class NotFoundError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('NOT_FOUND', message, options);
  }
}

export interface RegistryErrorDetail {
  code: string;
  message?: string;
  detail?: unknown;
}

/** An HTTP-level failure talking to a registry. The URL is already redacted. */
export class RegistryError extends FerryError {
  constructor(
    code: string,
    message: string,
    readonly method: string,
    readonly url: string,
    readonly status: number | undefined,
    readonly errors: RegistryErrorDetail[],
    options?: FerryErrorOptions,
  ) {
    super(code, message, options);
  }

  /** The registry's Retry-After (429, 503), in milliseconds, for callers that retry themselves. */
  retryAfterMs: number | undefined;
}

export class AuthError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('UNAUTHORIZED', message, options);
  }
}

/** Credential configuration problems (bad config.json, failing helper). */
export class CredentialsError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('CREDENTIALS', message, options);
  }
}

/** Another process holds the store lock. */
export class LockError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('LOCKED', message, options);
  }
}

export class AbortedError extends FerryError {
  constructor(message = 'operation aborted') {
    super('ABORTED', message);
  }
}

/** The system error codes that say a path cannot be written, and what each means. */
const PATH_PROBLEMS: Record<string, { code: string; says: string; hint: string }> = {
  EROFS: { code: 'PATH_READ_ONLY', says: 'read-only file system', hint: 'choose a path on a writable file system' },
  EACCES: { code: 'PATH_PERMISSION', says: 'permission denied', hint: 'choose a path you may write to, or change its permissions' },
  EPERM: { code: 'PATH_PERMISSION', says: 'operation not permitted', hint: 'choose a path you may write to, or change its permissions' },
  ENOSPC: { code: 'PATH_NO_SPACE', says: 'no space left on device', hint: 'free space there, or choose a path on another file system' },
  EDQUOT: { code: 'PATH_NO_SPACE', says: 'disk quota exceeded', hint: 'free space there, or choose a path on another file system' },
};

/**
 * A file system refused a write: says which path (as the user gave it: `--store DIR`, `-o FILE`),
 * what ferry was doing there and why, with a hint, instead of a bare errno from deep inside.
 */
export class PathError extends FerryError {
  constructor(
    readonly path: string,
    readonly operation: string,
    readonly errno: string,
    options: FerryErrorOptions & { code: string; says: string },
  ) {
    super(options.code, `cannot write ${path}: ${operation}: ${options.says} (${errno})`, options);
  }
}

/**
 * `err` as a PathError about `path` when it is a read-only, permission or no-space error (else
 * `err` itself, unchanged). `operation` says what was being done: "creating the store".
 */
export function pathError(err: unknown, path: string, operation: string): unknown {
  // The system error may sit under context others added (a tar member's name, a blob's digest).
  let e: unknown = err;
  for (let depth = 0; depth < 8 && e instanceof Error; depth++, e = e.cause) {
    if (e instanceof PathError) return e;
    const code = (e as NodeJS.ErrnoException).code;
    const problem = typeof code === 'string' && Object.hasOwn(PATH_PROBLEMS, code) ? PATH_PROBLEMS[code] : undefined;
    if (problem && code !== undefined) {
      return new PathError(path, operation, code, { code: problem.code, says: problem.says, hint: problem.hint, cause: err });
    }
  }
  return err;
}

/**
 * The error with context before its message, as a NEW error (Go's `%w`): `err` itself is never
 * changed, because one error object is often shared (one failed blob is the failure of every image
 * that needs it, and each image wraps it with its own name). The new error has err's prototype and
 * own fields, so `instanceof`, `code`, `exitCode`, `hint`, `retryable` and class-specific fields
 * (a RegistryError's status, a system error's errno) read as before; its `cause` is err. A message
 * that already starts with the context is returned as it is, so wrapping twice does not repeat it.
 * A thrown non-Error value has no message to prefix and is returned unchanged.
 */
export function wrap<E>(err: E, context: string): E {
  if (!(err instanceof Error) || err.message.startsWith(context)) return err;
  const copy = Object.create(Object.getPrototypeOf(err) as object) as Error;
  Object.defineProperties(copy, Object.getOwnPropertyDescriptors(err));
  const message = `${context}: ${err.message}`;
  const field = { writable: true, configurable: true, enumerable: false };
  Object.defineProperty(copy, 'message', { ...field, value: message });
  Object.defineProperty(copy, 'cause', { ...field, value: err });
  // The stack's first line repeats the message; keep the original frames (where it was thrown).
  if (typeof err.stack === 'string') {
    const head = `${err.name}: ${err.message}`;
    const stack = err.stack.startsWith(head) ? `${err.name}: ${message}${err.stack.slice(head.length)}` : err.stack;
    Object.defineProperty(copy, 'stack', { ...field, value: stack });
  }
  return copy as E;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
