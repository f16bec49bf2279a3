/** Platforms: parsing "os/arch[/variant]", normalising like containerd, and matching. */
import { z } from '../util/zod.js';
import { UsageError } from '../util/errors.js';

export const PlatformSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).nullish(),
  variant: z.string().optional(),
  features: z.array(z.string()).nullish(),
});
export type Platform = z.infer<typeof PlatformSchema>;

export interface PlatformSpec {
  os: string;
  architecture: string;
  variant: string | undefined;
}

const ARCH_ALIASES: Record<string, string> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  armhf: 'arm',
  armel: 'arm',
  i386: '386',
};

/** containerd's normalisation: arm64's default variant is v8, arm's is v7, amd64's v1. */
export function normalizePlatform(p: { os: string; architecture: string; variant?: string | undefined }): PlatformSpec {
  const os = p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() || undefined;
  // As containerd: armhf is arm/v7 and armel arm/v6, whatever variant came with them.
  if (architecture === 'armhf') variant = 'v7';
  if (architecture === 'armel') variant = 'v6';
  architecture = ARCH_ALIASES[architecture] ?? architecture;
  if (architecture === 'arm64' && (variant === 'v8' || variant === '8' || variant === 'v8.0' || variant === '8.0')) variant = undefined;
  if (architecture === 'arm' && variant === undefined) variant = 'v7';
  if (architecture === 'arm' && variant !== undefined && /^\d+$/.test(variant)) variant = `v${variant}`;
  if (architecture === 'amd64' && variant === 'v1') variant = undefined;
  return { os, architecture, variant };
}

/** Parse "os/arch[/variant]" as given to --platform. */
export function parsePlatform(s: string): PlatformSpec {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((x) => !/^[A-Za-z0-9_.-]+$/.test(x))) {
    throw new UsageError(`invalid platform ${JSON.stringify(s)}: want OS/ARCH[/VARIANT], e.g. linux/arm64 or linux/arm/v7`);
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return normalizePlatform({ os, architecture, variant });
}

export function formatPlatform(p: { os: string; architecture: string; variant?: string | undefined | null }): string {
  return [p.os, p.architecture, p.variant].filter((x): x is string => !!x).join('/');
}

/** True when a descriptor's platform is the one asked for (after normalising both). */
export function platformMatches(want: PlatformSpec, have: Platform | undefined | null): boolean {
  if (!have) return false;
  const h = normalizePlatform({ os: have.os, architecture: have.architecture, variant: have.variant });
  return h.os === want.os && h.architecture === want.architecture && (h.variant ?? '') === (want.variant ?? '');
}
