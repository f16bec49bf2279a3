// Owns the throwaway PKI of the integration tests, made at test time with the `openssl` CLI:
// one EC P-256 root CA, a TLS server leaf for the loopback names, and a token-signing leaf whose
// chain the registry verifies (JWT `x5c`) against the CA given as its rootcertbundle.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTempDir } from './temp.js';
import { runTool } from './tools.js';

export interface CertAndKey {
  certFile: string;
  keyFile: string;
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
}

export interface ServerCert extends CertAndKey {
  /** The SANs in the certificate. */
  ipAddresses: string[];
  dnsNames: string[];
}

export interface TokenSigner extends CertAndKey {
  /** PEM certificates from the leaf up to, not including, the root: what goes into `x5c`. */
  chainPems: string[];
}

export interface TestPki {
  dir: string;
  ca: CertAndKey;
  server: ServerCert;
  tokenSigner: TokenSigner;
  /**
   * A directory holding only `ca.crt`: the layout containers/image expects for
   * `skopeo --src-cert-dir/--dest-cert-dir` (and Docker's certs.d/<host>/).
   */
  certDir: string;
}

export interface PkiOptions {
  /** Where to write; default a new temp dir removed at teardown. */
  dir?: string;
  /** SAN IPs of the server cert. Default 127.0.0.1 and ::1. */
  serverIps?: string[];
  /** SAN DNS names of the server cert. Default localhost. */
  serverDnsNames?: string[];
  /** Validity of every certificate, in days. Default 7. */
  days?: number;
}

async function generateKey(keyFile: string): Promise<void> {
  await runTool('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
}

function randomSerial(): string {
  // Positive 127-bit serial, as RFC 5280 asks (Go rejects negative serials).
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f;
  return `0x${bytes.toString('hex')}`;
}

async function issueLeaf(
  dir: string,
  name: string,
  subject: string,
  extensions: string[],
  issuer: { certFile: string; keyFile: string },
  days: number,
): Promise<{ certFile: string; keyFile: string }> {
  const keyFile = join(dir, `${name}.key`);
  const csrFile = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  const certFile = join(dir, `${name}.crt`);
  await generateKey(keyFile);
  await runTool('openssl', ['req', '-new', '-key', keyFile, '-subj', subject, '-out', csrFile]);
  await writeFile(extFile, `${extensions.join('\n')}\n`);
  await runTool('openssl', [
    'x509',
    '-req',
    '-in',
    csrFile,
    '-CA',
    issuer.certFile,
    '-CAkey',
    issuer.keyFile,
    '-set_serial',
    randomSerial(),
    '-days',
    String(days),
    '-sha256',
    '-extfile',
    extFile,
    '-out',
    certFile,
  ]);
  return { certFile, keyFile };
}

async function load(files: { certFile: string; keyFile: string }): Promise<CertAndKey> {
  const [certPem, keyPem] = await Promise.all([readFile(files.certFile, 'utf8'), readFile(files.keyFile, 'utf8')]);
  return { ...files, certPem, keyPem };
}

/** Generates a new CA, server cert and token signer (about 10 openssl runs, ~100 ms). */
export async function createPki(options: PkiOptions = {}): Promise<TestPki> {
  const dir = options.dir ?? createTempDir('pki');
  const days = options.days ?? 7;
  const ipAddresses = options.serverIps ?? ['127.0.0.1', '::1'];
  const dnsNames = options.serverDnsNames ?? ['localhost'];
  const runId = randomBytes(4).toString('hex');

  const caFiles = { certFile: join(dir, 'ca.crt'), keyFile: join(dir, 'ca.key') };
  await generateKey(caFiles.keyFile);
  await runTool('openssl', [
    'req',
    '-x509',
    '-new',
    '-key',
    caFiles.keyFile,
    '-sha256',
    '-days',
    String(days),
    '-subj',
    `/O=ferry tests/CN=ferry test CA ${runId}`,
    '-set_serial',
    randomSerial(),
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-addext',
    'subjectKeyIdentifier=hash',
    '-out',
    caFiles.certFile,
  ]);

  const sans = [...ipAddresses.map((ip) => `IP:${ip}`), ...dnsNames.map((dns) => `DNS:${dns}`)];
  const [serverFiles, signerFiles] = await Promise.all([
    issueLeaf(
      dir,
      'server',
      `/O=ferry tests/CN=${ipAddresses[0] ?? dnsNames[0] ?? 'server'}`,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth',
        `subjectAltName=${sans.join(',')}`,
        'subjectKeyIdentifier=hash',
        'authorityKeyIdentifier=keyid',
      ],
      caFiles,
      days,
    ),
    issueLeaf(
      dir,
      'token-signer',
      `/O=ferry tests/CN=ferry test token signer ${runId}`,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'subjectKeyIdentifier=hash',
        'authorityKeyIdentifier=keyid',
      ],
      caFiles,
      days,
    ),
  ]);

  const [ca, server, signer] = await Promise.all([load(caFiles), load(serverFiles), load(signerFiles)]);

  const certDir = createTempDir('certdir');
  await writeFile(join(certDir, 'ca.crt'), ca.certPem);

  return {
    dir,
    ca,
    server: { ...server, ipAddresses, dnsNames },
    tokenSigner: { ...signer, chainPems: [signer.certPem] },
    certDir,
  };
}

let shared: Promise<TestPki> | undefined;

/** One PKI per test process, made on first use: the cheap choice when a suite needs no isolation. */
export function sharedPki(): Promise<TestPki> {
  shared ??= createPki().catch((err: unknown) => {
    shared = undefined;
    throw err;
  });
  return shared;
}

/** Base64 (standard alphabet) DER of each certificate in a PEM bundle, in order: JWT `x5c` values. */
export function pemToDerBase64(pem: string): string[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => block.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, ''));
}
