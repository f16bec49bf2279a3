// `ferry load --ctr`: the client command is split with simple shell rules, so a path with a
// space works, and a bad quote is a usage error (exit 2) rather than a strange argv.
import { describe, expect, it } from 'vitest';
import { ctrCommand } from '../../../../src/cli/load.js';
import { UsageError } from '../../../../src/util/errors.js';

describe('--ctr', () => {
  it('splits like a shell', () => {
    expect(ctrCommand('k3s ctr')).toEqual(['k3s', 'ctr']);
    expect(ctrCommand('"/tmp/my bin/ctr"')).toEqual(['/tmp/my bin/ctr']);
    expect(ctrCommand("'/tmp/my bin/ctr' --debug")).toEqual(['/tmp/my bin/ctr', '--debug']);
  });

  it('an unterminated quote or an empty command is a usage error', () => {
    for (const bad of ['"k3s ctr', "'ctr", '   ', '']) {
      const err = (() => {
        try {
          ctrCommand(bad);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err, bad).toBeInstanceOf(UsageError);
    }
  });
});
