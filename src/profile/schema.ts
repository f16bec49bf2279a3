/**
 * The profile format (`apiVersion: ferry/v1`, `kind: ImageSet`): one zod schema, checked at run
 * time and published as JSON Schema (profiles/schema.json, generated from this by
 * `npm run schema`) so that editors complete and check profiles as they are written.
 */
import { z } from '../util/zod.js';

export const PROFILE_API_VERSION = 'ferry/v1';
export const PROFILE_KIND = 'ImageSet';

/** Bounds on what a profile may ask for: a profile is trusted input, but not unbounded input. */
export const PROFILE_LIMITS = {
  /** Bytes of one profile file. */
  maxFileBytes: 4 * 1024 * 1024,
  /** Profile files in one run, includes counted. */
  maxFiles: 256,
  /** Include chains deeper than this are refused (a cycle is found first; this bounds the walk). */
  maxIncludeDepth: 32,
  /** Image entries over every file of a run. */
  maxImages: 100_000,
  /** Characters of one tag regex. */
  maxPatternLength: 1024,
  /** Patterns in one allow or deny list. */
  maxPatterns: 256,
  /** `latest: N`. */
  maxLatest: 10_000,
} as const;

/** metadata.name: used in file names (`bundles/<name>-<date>.ferry`), so a DNS-label-like word. */
export const PROFILE_NAME_RE = /^[a-z0-9](?:[-a-z0-9._]{0,61}[a-z0-9])?$/;

const Platform = z.string().min(1).max(256).describe('OS/ARCH[/VARIANT], e.g. linux/amd64, linux/arm64, linux/arm/v7');

const Pattern = z
  .string()
  .min(1)
  .max(PROFILE_LIMITS.maxPatternLength)
  .describe('a regular expression (JavaScript syntax) matched against the whole tag');

export const TagFilterSchema = z
  .strictObject({
    allow: z
      .array(Pattern)
      .max(PROFILE_LIMITS.maxPatterns)
      .optional()
      .describe('keep only tags matching at least one of these regexes (each matched against the whole tag)'),
    deny: z.array(Pattern).max(PROFILE_LIMITS.maxPatterns).optional().describe('then drop tags matching any of these regexes'),
    semver: z
      .string()
      .min(1)
      .max(1024)
      .optional()
      .describe('then keep tags that are semantic versions (a leading v is accepted) inside this npm semver range; other tags are dropped'),
    prerelease: z
      .boolean()
      .optional()
      .describe(
        'let semver and latest select pre-releases (1.2.0-rc.1) too; by default a range selects them only when it names one (as npm does) and latest skips them',
      ),
    latest: z
      .number()
      .int()
      .min(1)
      .max(PROFILE_LIMITS.maxLatest)
      .optional()
      .describe('finally keep the N highest tags by semver precedence (tags that are not semantic versions are dropped)'),
  })
  .describe('how the tags of a repository are chosen: allow, then deny, then semver, then latest');
export type TagFilter = z.infer<typeof TagFilterSchema>;

export const ProfileImageSchema = z
  .strictObject({
    ref: z.string().min(1).max(1024).describe(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: ${VAR} is the profile syntax described
      'an image reference: REPO:TAG or REPO@sha256:DIGEST, or a repository alone when tags: chooses the tags; ${VAR} and ${VAR:-default} are replaced from the environment',
    ),
    tags: TagFilterSchema.optional(),
    platforms: z
      .array(Platform)
      .min(1)
      .max(64)
      .optional()
      .describe('the platforms to carry for this image (overrides the profile default); omitted: the default'),
    target: z
      .string()
      .min(1)
      .max(255)
      .optional()
      .describe('the repository the image is named as on the far side (load, serve, mirror), e.g. cache/redis; the tag or digest is kept'),
  })
  .describe('one image, or a repository with tag filters');
export type ProfileImage = z.infer<typeof ProfileImageSchema>;

export const ProfileSchema = z
  .strictObject({
    apiVersion: z.literal(PROFILE_API_VERSION).describe('the profile format version'),
    kind: z.literal(PROFILE_KIND),
    metadata: z.strictObject({
      name: z
        .string()
        .regex(PROFILE_NAME_RE, 'lower-case letters, digits, "-", "." and "_", starting and ending with a letter or digit, at most 63')
        .describe('the profile name, used in bundle file names'),
      description: z.string().max(4096).optional(),
    }),
    platforms: z
      .array(Platform)
      .min(1)
      .max(64)
      .optional()
      .describe('the default platforms for every image of this file; omitted: every platform an image has'),
    include: z
      .array(z.string().min(1).max(4096))
      .max(PROFILE_LIMITS.maxFiles)
      .optional()
      .describe('other profiles, as paths relative to this file; their images are carried too (with their own defaults)'),
    images: z.array(ProfileImageSchema).max(PROFILE_LIMITS.maxImages).optional().describe('the images to carry'),
  })
  .describe('a ferry image set: what to carry across the air gap');
export type Profile = z.infer<typeof ProfileSchema>;

/** The JSON Schema published as profiles/schema.json. */
export function profileJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(ProfileSchema, { target: 'draft-2020-12' }) as Record<string, unknown>;
  return {
    $schema: schema.$schema,
    title: 'ferry ImageSet profile (ferry/v1)',
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== '$schema')),
  };
}
