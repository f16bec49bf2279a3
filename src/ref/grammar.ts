/**
 * The image reference grammar of distribution/reference, as regular expressions.
 *
 *   reference        := name [ ":" tag ] [ "@" digest ]
 *   name             := [domain "/"] remote-name
 *   domain           := host [":" port-number]
 *   host             := domain-name | "[" IPv6address "]"
 *   domain-name      := domain-component ("." domain-component)*
 *   domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
 *   port-number      := [0-9]+
 *   remote-name      := path-component ("/" path-component)*
 *   path-component   := alnum (separator alnum)*
 *   alnum            := [a-z0-9]+
 *   separator        := [_.] | "__" | "-"+
 *   tag              := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *   digest           := algorithm ":" hex        (hex at least 32 characters)
 *   algorithm        := [A-Za-z][A-Za-z0-9]* ([-_+.][A-Za-z][A-Za-z0-9]*)*
 *   identifier       := [a-f0-9]{64}             (an image ID: a sha256 hex without its algorithm)
 *
 * The pieces are composed exactly as upstream composes them. Go's regexp and JavaScript's
 * are both leftmost-first, so the capture groups split a string the same way in both (this
 * matters for "a/b", where "a" is taken as a domain by the strict grammar).
 *
 * Backtracking cost: JavaScript's engine backtracks where RE2 does not, so these patterns must
 * not blow up on hostile input. They do not: repeated groups are delimited by characters
 * that the repeated atom cannot consume ("/", ".", a separator), so a failed path is given up
 * without revisiting earlier groups and matching stays linear in practice; the only long
 * bounded repetition is the tag's {0,127}. test/unit/ref/names.test.ts times 100k-character adversarial inputs.
 */

const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|-+)';
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const REMOTE_NAME = `${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
/** Compressed or full IPv6 between brackets; zone identifiers and IPv4-mapped forms are excluded. */
const IPV6_ADDRESS = '\\[[a-fA-F0-9:]+\\]';
const HOST = `(?:${DOMAIN_NAME}|${IPV6_ADDRESS})`;
const DOMAIN_AND_PORT = `${HOST}(?::[0-9]+)?`;

const NAME = `(?:${DOMAIN_AND_PORT}/)?${REMOTE_NAME}`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}';

/** Groups: 1 name, 2 tag, 3 digest. */
export const REFERENCE_RE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
/** Groups: 1 domain (may be undefined), 2 remote name. */
export const ANCHORED_NAME_RE = new RegExp(`^(?:(${DOMAIN_AND_PORT})/)?(${REMOTE_NAME})$`);
export const ANCHORED_TAG_RE = new RegExp(`^${TAG}$`);
export const ANCHORED_DIGEST_RE = new RegExp(`^${DIGEST}$`);
export const ANCHORED_IDENTIFIER_RE = /^[a-f0-9]{64}$/;

/**
 * go-digest's own (looser) digest grammar. A digest whose algorithm we do not support is
 * "unsupported" when it matches this, and "invalid format" when it does not (e.g. "SHA256:…").
 */
export const GO_DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Upper bound on the repository path (the name without its domain), in characters. */
export const REPOSITORY_PATH_MAX = 255;
