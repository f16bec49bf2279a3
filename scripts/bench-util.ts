/** Process helpers shared by scripts/bench.ts and its sections (scripts/bench-*.ts). */
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface Timed {
  ms: number;
  peakRssBytes?: number;
  /** For `ferry --json`: the report's durationMs (the work, without process start-up). */
  reportMs?: number;
  /** With trackRss: the largest sum of the child processes' VmRSS seen at one poll (ferry runs zstd as a child). */
  childPeakRssBytes?: number;
  /** For `ferry --json`: the whole final `{"type":"report",...}` line. */
  report?: Record<string, unknown>;
}

export async function childRss(pid: number): Promise<number> {
  const kids = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean);
  let sum = 0;
  for (const k of kids) {
    const st = await readFile(`/proc/${k}/status`, 'utf8').catch(() => '');
    const m = /VmRSS:\s+(\d+) kB/.exec(st);
    if (m) sum += Number(m[1]) * 1024;
  }
  return sum;
}

export function run(cmd: string, args: string[], opts: { trackRss?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}) });
    let stderr = '';
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      // The last line is the report: with thousands of images it is megabytes long.
      out = (out + d.toString()).slice(-32 * 1024 * 1024);
    });
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    let peak = 0;
    let childPeak = 0;
    const poll = opts.trackRss
      ? setInterval(() => {
          readFile(`/proc/${child.pid}/status`, 'utf8').then(
            (s) => {
              const m = /VmHWM:\s+(\d+) kB/.exec(s);
              if (m) peak = Math.max(peak, Number(m[1]) * 1024);
            },
            () => {},
          );
          childRss(child.pid!).then(
            (n) => (childPeak = Math.max(childPeak, n)),
            () => {},
          );
        }, 20)
      : undefined;
    child.on('error', reject);
    child.on('close', (code) => {
      if (poll) clearInterval(poll);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr}`));
      else {
        let reportMs: number | undefined;
        let report: Record<string, unknown> | undefined;
        try {
          const r = JSON.parse(out.trim().split('\n').at(-1) ?? '') as { type?: string; durationMs?: number };
          if (r.type === 'report') {
            reportMs = r.durationMs;
            report = r as Record<string, unknown>;
          }
        } catch {
          // not a ferry --json run
        }
        resolve({
          ms,
          ...(opts.trackRss ? { peakRssBytes: peak, childPeakRssBytes: childPeak } : {}),
          ...(reportMs !== undefined ? { reportMs } : {}),
          ...(report ? { report } : {}),
        });
      }
    });
  });
}

/** Runs a command and returns its stdout as bytes (for `skopeo inspect --raw`). */
export function capture(cmd: string, args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message} ${stderr.toString().slice(-2000)}`));
      else resolve(stdout);
    });
  });
}

export const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;
export const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
