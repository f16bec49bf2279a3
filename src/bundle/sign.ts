/**
 * Bundle signatures: ECDSA P-256 with SHA-256 (DER signature, what `openssl dgst -sha256 -sign`
 * makes) or Ed25519 (what `openssl pkeyutl -sign -rawin` makes), over the exact bytes of
 * ferry-bundle.json. node:crypto only.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { SignatureAlgorithm } from './format.js';
import { LIMITS } from './format.js';
import { UsageError } from '../util/errors.js';

function algorithmOf(key: KeyObject, file: string): SignatureAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ecdsa-p256-sha256';
  const what = key.asymmetricKeyType === 'ec' ? `ec ${key.asymmetricKeyDetails?.namedCurve ?? '?'}` : String(key.asymmetricKeyType);
  throw new UsageError(`${file}: unsupported key type ${what} (want an ECDSA P-256 or Ed25519 key)`, {
    hint: 'make one with: openssl genpkey -algorithm ed25519 -out key.pem',
  });
}

async function readKeyFile(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new UsageError(`cannot read key ${file}: ${(err as Error).message}`);
  }
}

export interface LoadedKey {
  key: KeyObject;
  algorithm: SignatureAlgorithm;
}

export async function loadPrivateKey(file: string): Promise<LoadedKey> {
  const pem = await readKeyFile(file);
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new UsageError(`${file} is not a PEM private key: ${(err as Error).message}`);
  }
  return { key, algorithm: algorithmOf(key, file) };
}

/** A public key; a private key file is accepted too (its public half is used). */
export async function loadPublicKey(file: string): Promise<LoadedKey> {
  const pem = await readKeyFile(file);
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new UsageError(`${file} is not a PEM public key: ${(err as Error).message}`);
  }
  return { key, algorithm: algorithmOf(key, file) };
}

export function signManifest(bytes: Uint8Array, k: LoadedKey): Buffer {
  return k.algorithm === 'ed25519' ? sign(null, bytes, k.key) : sign('sha256', bytes, { key: k.key, dsaEncoding: 'der' });
}

export function verifyManifestSignature(bytes: Uint8Array, signature: Uint8Array, k: LoadedKey): boolean {
  if (signature.byteLength === 0 || signature.byteLength > LIMITS.maxSignatureBytes) return false;
  try {
    return k.algorithm === 'ed25519'
      ? verify(null, bytes, k.key, signature)
      : verify('sha256', bytes, { key: k.key, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}
