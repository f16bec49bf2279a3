// containerd[:SOCKET][?namespace=NS]: the namespace follows containerd's identifier rule
// (pkg/identifiers: alphanumeric runs joined by single '.', '_' or '-', at most 76 chars), so a
// name containerd would refuse is a usage error before anything runs.
import { describe, expect, it } from 'vitest';
import { parseLoadDestination } from '../../../../src/transports/table.js';

describe('containerd namespace', () => {
  it.each(['k8s.io', 'a', 'A1', 'a-b_c.d', 'x'.repeat(76), 'moby', 'a1.b2-c3'])('%s is accepted', (ns) => {
    expect(parseLoadDestination(`containerd?namespace=${ns}`)).toMatchObject({ kind: 'containerd', namespace: ns });
  });

  it.each(['a..b', 'a.-b', 'a__b', 'a--b', '-a', 'a.', '.a', 'a b', 'a/b', 'x'.repeat(77), ''])('%j is refused', (ns) => {
    expect(() => parseLoadDestination(`containerd?namespace=${encodeURIComponent(ns)}`)).toThrow(/invalid containerd namespace/);
  });
});
