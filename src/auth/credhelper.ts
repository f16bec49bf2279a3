/**
 * Docker credential helpers (the docker-credential-helpers protocol).
 *
 * A helper is an executable `docker-credential-<name>` found on PATH. For `get` the server URL is
 * written to stdin and the helper prints `{"ServerURL","Username","Secret"}` on stdout and exits
 * 0. When it has nothing for that server it exits non-zero and prints "credentials not found in
 * native keychain" (the library's ErrCredentialsNotFound text). `list` prints a JSON object of
 * server URL -> username. A Username of `<token>` means Secret is an identity (OAuth2 refresh)
 * token rather than a password.
 *
 * Secrets never reach error messages: a failing helper's output is quoted only when it does not
 * look like a JSON document, and a malformed reply is reported without its content.
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';
import { z } from '../util/zod.js';
import { CredentialsError, errorMessage } from '../util/errors.js';
import type { Credential } from './dockerconfig.js';

export const HELPER_PREFIX = 'docker-credential-';
/** The Username a helper returns when Secret is an identity token. */
export const IDENTITY_TOKEN_USERNAME = '<token>';

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;
const MAX_STDERR_BYTES = 16 * 1024;
const MAX_QUOTED_OUTPUT = 200;

// Helper names come from config files; they become part of a file name, so no path separators,
// no leading dot or dash. Covers every published helper (osxkeychain, ecr-login, gcloud, ...).
const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export interface CredentialHelperOptions {
  /** Environment for the helper process; also supplies PATH unless `searchPath` is set. */
  env?: NodeJS.ProcessEnv;
  /** PATH-style directory list to look for the helper in, instead of `env.PATH`. */
  searchPath?: string;
  /** Kill the helper after this long (default 30 s). */
  timeoutMs?: number;
  /** Fail if the helper writes more than this to stdout (default 1 MiB). */
  maxOutputBytes?: number;
  /** Where the helper was configured, for error messages (`credsStore in /home/u/.docker/config.json`). */
  configuredBy?: string;
}

const getReplySchema = z.looseObject({
  ServerURL: z.string().nullish(),
  Username: z.string().nullish(),
  Secret: z.string().nullish(),
});
const listReplySchema = z.record(z.string(), z.string());

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export class CredentialHelper {
  readonly program: string;
  private resolved: Promise<string> | undefined;
  private readonly inflight = new Map<string, Promise<Credential | undefined>>();

  constructor(
    readonly name: string,
    private readonly options: CredentialHelperOptions = {},
  ) {
    this.program = HELPER_PREFIX + name;
  }

  /**
   * Asks the helper for the credentials of `serverURL`. Resolves undefined when the helper has
   * none; concurrent calls for the same server share one helper process.
   */
  get(serverURL: string): Promise<Credential | undefined> {
    let pending = this.inflight.get(serverURL);
    if (pending === undefined) {
      pending = this.runGet(serverURL).finally(() => this.inflight.delete(serverURL));
      this.inflight.set(serverURL, pending);
    }
    return pending;
  }

  /** The helper's `list`: server URL -> username. */
  async list(): Promise<Map<string, string>> {
    const res = await this.run('list', '');
    if (res.code !== 0) throw this.failure('list', undefined, res);
    const parsed = listReplySchema.safeParse(parseJson(res.stdout));
    if (!parsed.success) throw this.error('list returned malformed output (expected a JSON object of server URL to username)');
    return new Map(Object.entries(parsed.data));
  }

  private async runGet(serverURL: string): Promise<Credential | undefined> {
    const res = await this.run('get', serverURL);
    if (res.code !== 0) {
      if (isNotFound(res.stdout) || isNotFound(res.stderr)) return undefined;
      throw this.failure('get', serverURL, res);
    }
    const parsed = getReplySchema.safeParse(parseJson(res.stdout));
    if (!parsed.success) {
      throw this.error(`get for ${serverURL} returned malformed output (expected JSON with Username and Secret)`);
    }
    const username = parsed.data.Username ?? '';
    const secret = parsed.data.Secret ?? '';
    // Some helpers answer "nothing stored" with an empty reply and exit 0.
    if (secret === '') return undefined;
    const origin = `${this.program} (${serverURL})`;
    if (username === IDENTITY_TOKEN_USERNAME) return { kind: 'identityToken', token: secret, origin };
    return { kind: 'basic', username, password: secret, origin };
  }

  private resolve(): Promise<string> {
    this.resolved ??= this.findProgram();
    return this.resolved;
  }

  private async findProgram(): Promise<string> {
    if (!HELPER_NAME.test(this.name)) {
      throw this.error(`invalid credential helper name ${JSON.stringify(this.name)}`, {
        hint: 'a helper name may only contain letters, digits, ".", "_" and "-"',
      });
    }
    const searchPath = this.options.searchPath ?? this.options.env?.PATH ?? process.env.PATH ?? '';
    const found = await findExecutable(this.program, searchPath);
    if (found === undefined) {
      throw this.error(`${this.program} not found in PATH`, {
        hint:
          `install ${this.program}, or remove the reference to "${this.name}"` +
          (this.options.configuredBy ? ` (${this.options.configuredBy})` : ' from the Docker config file'),
      });
    }
    return found;
  }

  private async run(action: 'get' | 'list', input: string): Promise<RunResult> {
    const file = await this.resolve();
    const timeoutMs = this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const maxOutput = this.options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    const what = action === 'get' ? `get for ${input}` : 'list';

    return new Promise<RunResult>((resolvePromise, reject) => {
      const child = spawn(file, [action], {
        env: this.options.env ?? process.env,
        stdio: ['pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let stdoutBytes = 0;
      let stderrBytes = 0;
      let settled = false;

      const settle = (outcome: RunResult | CredentialsError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (outcome instanceof CredentialsError) reject(outcome);
        else resolvePromise(outcome);
      };
      // Give up now rather than on 'close': a grandchild may keep the pipes open after the kill.
      const abort = (err: CredentialsError): void => {
        if (settled) return;
        child.kill('SIGKILL');
        child.stdout.destroy();
        child.stderr.destroy();
        settle(err);
      };
      const timer = setTimeout(() => abort(this.error(`${what} timed out after ${timeoutMs} ms`, { retryable: true })), timeoutMs);

      child.stdout.on('data', (chunk: Buffer) => {
        stdoutBytes += chunk.length;
        if (stdoutBytes > maxOutput) abort(this.error(`${what} wrote more than ${maxOutput} bytes to stdout`));
        else stdout.push(chunk);
      });
      child.stderr.on('data', (chunk: Buffer) => {
        if (stderrBytes < MAX_STDERR_BYTES) stderr.push(chunk.subarray(0, MAX_STDERR_BYTES - stderrBytes));
        stderrBytes += chunk.length;
      });
      // A helper may exit without reading stdin; the resulting EPIPE is not our failure.
      child.stdin.on('error', () => {});
      child.stdin.end(input);

      child.on('error', (err) => settle(this.error(`could not run ${file}: ${errorMessage(err)}`, { cause: err })));
      child.on('close', (code, signal) =>
        settle({
          code,
          signal,
          stdout: Buffer.concat(stdout).toString('utf8'),
          stderr: Buffer.concat(stderr).toString('utf8'),
        }),
      );
    });
  }

  private failure(action: 'get' | 'list', serverURL: string | undefined, res: RunResult): CredentialsError {
    const status = res.signal !== null ? `killed by ${res.signal}` : `exit status ${res.code}`;
    // docker-credential-helpers print their error on stdout; others may use stderr.
    const said = quoteOutput(res.stdout) ?? quoteOutput(res.stderr);
    const what = serverURL === undefined ? action : `${action} for ${serverURL}`;
    return this.error(`${what} failed: ${status}${said === undefined ? '' : `: ${said}`}`);
  }

  private error(detail: string, opts: { hint?: string; retryable?: boolean; cause?: unknown } = {}): CredentialsError {
    const by = this.options.configuredBy ? ` (${this.options.configuredBy})` : '';
    return new CredentialsError(`credential helper ${this.program}${by}: ${detail}`, opts);
  }
}

function isNotFound(output: string): boolean {
  return /credentials not found/i.test(output);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The first line of a failing helper's output, for the error message. Withheld when it could be
 * a credentials document (a helper that printed its reply and then failed).
 */
function quoteOutput(output: string): string | undefined {
  const text = output.trim();
  if (text === '') return undefined;
  // Anything that looks like (part of) a credentials reply: a JSON document, or a line naming
  // the protocol's secret fields ("error: {\"Username\":…,\"Secret\":…}").
  if (/^[[{]/.test(text) || /"?(Secret|Password|Token|IdentityToken)"?\s*:/i.test(text)) return '(output withheld)';
  const line = text.split(/\r?\n/, 1)[0]!;
  return line.length > MAX_QUOTED_OUTPUT ? `${line.slice(0, MAX_QUOTED_OUTPUT)}…` : line;
}

/** Looks `program` up in a PATH-style list of absolute directories, as execvp would. */
export async function findExecutable(program: string, searchPath: string): Promise<string | undefined> {
  // On Windows only .exe: Node cannot spawn .cmd/.bat without a shell, and helpers ship as .exe.
  const extensions = process.platform === 'win32' ? ['.exe'] : [''];
  for (const dir of searchPath.split(delimiter)) {
    // An empty PATH entry means the current directory to execvp; never resolve helpers from it.
    if (dir === '' || !isAbsolute(dir)) continue;
    for (const ext of extensions) {
      const candidate = join(dir, program + ext);
      try {
        const info = await stat(candidate);
        if (!info.isFile()) continue;
        await access(candidate, fsConstants.X_OK);
        return candidate;
      } catch {
        // Not here; keep looking.
      }
    }
  }
  return undefined;
}
