'use strict';
// Bundled in place of the string-width package (scripts/bundle-cli.mjs). string-width builds an
// Intl.Segmenter and several Unicode-property regular expressions when it is loaded, about 9 ms
// of every run, although yargs' help layout is the only thing that measures text on most runs,
// and that text is printable ASCII, whose width is its length. The package is loaded on the
// first string that is not.
let real;
module.exports = function stringWidth(string, options) {
  if (typeof string === 'string' && /^[\x20-\x7e]*$/.test(string)) return string.length;
  real ??= require('string-width').default;
  return real(string, options);
};
