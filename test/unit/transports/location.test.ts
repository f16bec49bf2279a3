import { describe, expect, it } from 'vitest';
import { formatLocation, parseLocation } from '../../../src/transports/table.js';

describe('image locations (skopeo syntax)', () => {
  it.each([
    ['docker://nginx', 'docker://docker.io/library/nginx:latest'],
    ['nginx:1.27', 'docker://docker.io/library/nginx:1.27'],
    ['docker://ghcr.io/org/app:2', 'docker://ghcr.io/org/app:2'],
    [`localhost:5000/x@sha256:${'a'.repeat(64)}`, `docker://localhost:5000/x@sha256:${'a'.repeat(64)}`],
    ['oci:./store', 'oci:./store'],
    ['oci:/srv/store:v1', 'oci:/srv/store:v1'],
    ['oci:/srv/store:docker.io/library/nginx:1.27', 'oci:/srv/store:docker.io/library/nginx:1.27'],
    ['oci-archive:/tmp/x.tar:latest', 'oci-archive:/tmp/x.tar:latest'],
    ['docker-archive:/tmp/x.tar', 'docker-archive:/tmp/x.tar'],
    ['docker-daemon:busybox:1', 'docker-daemon:docker.io/library/busybox:1'],
    ['containerd:registry.k8s.io/pause:3.9', 'containerd:registry.k8s.io/pause:3.9'],
    ['bundle:/media/usb/images.ferry', 'bundle:/media/usb/images.ferry'],
    // A name that is an Object.prototype property is a reference, not a transport.
    ['constructor:1', 'docker://docker.io/library/constructor:1'],
  ])('%s → %s, and back', (input, want) => {
    const loc = parseLocation(input);
    expect(formatLocation(loc)).toBe(want);
    expect(formatLocation(parseLocation(formatLocation(loc)))).toBe(want);
  });

  it.each([
    ['dir:/tmp/x', /unsupported transport/],
    ['http://example.com/x', /unsupported transport/],
    ['oci:', /needs a path/],
    ['docker-daemon:', /needs an image reference/],
    ['Nginx/Bad', /lowercase/],
    ['oci:/x:bad ref', /invalid reference/],
  ])('%s is refused', (input, msg) => {
    expect(() => parseLocation(input)).toThrow(msg);
  });
});
