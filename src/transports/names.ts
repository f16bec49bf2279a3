/** The names images read from layouts and archives go by in a copy. */
import type { Descriptor } from '../oci/manifest.js';
import { parseReference } from '../ref/reference.js';
import { CONTAINERD_NAME, REF_NAME } from './oci/layout.js';

/**
 * The name a store records for an image read from another layout: the full name containerd
 * and Docker record (io.containerd.image.name), else the layout's ref.name, else the
 * reference asked for, else the digest.
 */
export function layoutImageName(desc: Descriptor, asked: string | undefined): string {
  return desc.annotations?.[CONTAINERD_NAME] ?? desc.annotations?.[REF_NAME] ?? asked ?? `@${desc.digest}`;
}

/** A stored name as a full reference where it parses as one (`ferry-test/a:1` → `docker.io/ferry-test/a:1`). */
export function fullName(name: string): string {
  try {
    return parseReference(name).toString();
  } catch {
    return name;
  }
}
