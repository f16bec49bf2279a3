/**
 * What a registry's unexpected answer means, as an error: the registry's own `errors[]` code when
 * it sent one (distribution's spec), else one from the status; a redacted URL; whether a retry
 * may help (and after how long: Retry-After); and a hint for the user.
 */
import { AuthError, type FerryError, RegistryError, type RegistryErrorDetail } from '../../util/errors.js';
import { z } from '../../util/zod.js';
import { readCapped, type HttpResponse } from './http.js';
import type { RegistryRequest } from './client.js';
import { redactUrl } from './redact.js';
import { isRetryableStatus, parseRetryAfter } from './retry.js';

const MAX_ERROR_BODY = 64 * 1024;

const ErrorsBody = z.object({
  errors: z.array(z.looseObject({ code: z.string(), message: z.string().optional(), detail: z.unknown().optional() })),
});

export async function errorFromResponse(
  req: RegistryRequest,
  url: string,
  res: HttpResponse,
  registry: string,
  credential: () => Promise<unknown>,
): Promise<FerryError> {
  const status = res.statusCode;
  const text = req.method === 'HEAD' ? '' : await readCapped(res.body, MAX_ERROR_BODY).catch(() => '');
  let errors: RegistryErrorDetail[] = [];
  try {
    const parsed = ErrorsBody.safeParse(JSON.parse(text));
    if (parsed.success)
      errors = parsed.data.errors.map((e) => ({ code: e.code, ...(e.message ? { message: e.message } : {}), detail: e.detail }));
  } catch {
    // Plain-text error bodies happen (distribution 2.8 answers some 404s in text/plain).
  }
  const first = errors[0];
  const detail = first ? `${first.code}${first.message ? `: ${first.message}` : ''}` : text.trim().slice(0, 200) || httpStatusText(status);
  const safeUrl = redactUrl(url);
  const msg = `${req.what}: ${req.method} ${safeUrl}: HTTP ${status}: ${detail}`;
  const retryable = isRetryableStatus(status);
  if (status === 401) {
    const cred = await credential().catch(() => undefined);
    return new AuthError(msg, {
      hint: cred
        ? `the credentials configured for ${registry} were rejected; check them (docker login ${registry})`
        : `log in first (docker login ${registry}) or pass --username and --password-stdin`,
    });
  }
  const code =
    first?.code ??
    (status === 404
      ? 'NOT_FOUND'
      : status === 403
        ? 'DENIED'
        : status === 429
          ? 'TOOMANYREQUESTS'
          : status >= 500
            ? 'REGISTRY_UNAVAILABLE'
            : `HTTP_${status}`);
  const hint =
    status === 404
      ? `check the repository name and tag on ${registry}`
      : status === 403
        ? `your account may not have access to this repository on ${registry}`
        : status === 429
          ? 'the registry is rate-limiting; wait and rerun, or log in for a higher limit'
          : status >= 500
            ? `${registry} is failing; rerun later`
            : undefined;
  const err = new RegistryError(code, msg, req.method, safeUrl, status, errors, { retryable, ...(hint ? { hint } : {}) });
  const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
  if (retryAfterMs !== undefined) err.retryAfterMs = retryAfterMs;
  return err;
}

function httpStatusText(status: number): string {
  const names: Record<number, string> = {
    400: 'Bad Request',
    403: 'Forbidden',
    404: 'Not Found',
    405: 'Method Not Allowed',
    413: 'Payload Too Large',
    416: 'Range Not Satisfiable',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    502: 'Bad Gateway',
    503: 'Service Unavailable',
    504: 'Gateway Timeout',
  };
  return names[status] ?? 'unexpected status';
}
