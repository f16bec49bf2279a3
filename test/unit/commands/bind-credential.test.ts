import { describe, expect, it } from 'vitest';
import { bindStaticCredential } from '../../../src/commands/registry-access.js';

const credential = { kind: 'basic' as const, username: 'u', password: 'p' };

describe('bindStaticCredential (--username is for one registry)', () => {
  it('is nothing without --username', () => {
    expect(bindStaticCredential({}, ['a.example.com', 'b.example.com'])).toBeUndefined();
  });

  it('binds to the only registry the run talks to, Hub aliases folded', () => {
    expect(bindStaticCredential({ staticCredential: credential }, ['docker.io', 'index.docker.io'])).toEqual({
      registry: 'docker.io',
      credential,
    });
    expect(bindStaticCredential({ staticCredential: credential }, ['Reg.Example.com:5000', 'reg.example.com:5000'])).toEqual({
      registry: 'reg.example.com:5000',
      credential,
    });
  });

  it('refuses to guess between several registries, naming them', () => {
    expect(() => bindStaticCredential({ staticCredential: credential }, ['docker.io', 'ghcr.io'])).toThrow(
      /talks to 2: docker\.io, ghcr\.io/,
    );
  });

  it('takes --auth-registry when it is one the run talks to', () => {
    expect(
      bindStaticCredential({ staticCredential: credential, staticCredentialRegistry: 'https://index.docker.io/v1/' }, [
        'docker.io',
        'ghcr.io',
      ]),
    ).toEqual({ registry: 'docker.io', credential });
    expect(() =>
      bindStaticCredential({ staticCredential: credential, staticCredentialRegistry: 'quay.io' }, ['docker.io', 'ghcr.io']),
    ).toThrow(/does not talk to that registry \(it talks to docker\.io, ghcr\.io\)/);
  });

  it('a preferred registry (mirror: the destination) wins over the count', () => {
    expect(
      bindStaticCredential({ staticCredential: credential }, ['docker.io', 'ghcr.io', 'mirror.local:5000'], 'mirror.local:5000'),
    ).toEqual({ registry: 'mirror.local:5000', credential });
  });

  it('a run that talks to no registry has no use for it', () => {
    expect(() => bindStaticCredential({ staticCredential: credential }, [])).toThrow(/talks to none/);
  });
});
