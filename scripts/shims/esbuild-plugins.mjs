// esbuild plugins for the bundled CLI (scripts/bundle-cli.mjs); the start-up tests use them too.
const shim = new URL('./string-width.cjs', import.meta.url).pathname;

/** string-width is bundled behind a shim that loads it only for non-ASCII text (see the shim). */
export const lazyStringWidth = {
  name: 'lazy-string-width',
  setup(b) {
    b.onResolve({ filter: /^string-width$/ }, (args) => (args.importer === shim ? undefined : { path: shim }));
  },
};
