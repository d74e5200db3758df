// Test certificates made with the openssl CLI: a CA, and certificates it signs laid out as a
// kubernetes.io/tls Secret with ca.crt is mounted (tls.crt, tls.key, ca.crt in one directory),
// the way cert-manager writes them. Short-lived (one day, or already expired on request: openssl
// takes a negative number of days), EC P-256, for loopback tests only.
import { appendFile, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execTracked } from './processes.js';

export interface Ca {
  readonly crt: string;
  readonly key: string;
  /** An intermediate CA's root (what ca.crt holds); undefined for a root. */
  readonly root?: string;
  /** An intermediate CA's certificates up to the root, the root aside: itself first (what tls.crt carries after the leaf). */
  readonly chain?: readonly string[];
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A self-signed CA in `dir` (created): dir/ca.crt, dir/ca.key. */
export async function makeCa(dir: string, name: string): Promise<Ca> {
  await mkdir(dir, { recursive: true });
  const crt = join(dir, 'ca.crt');
  const key = join(dir, 'ca.key');
  await execTracked('openssl', [
    'req', '-x509', ...EC, '-keyout', key, '-out', crt, '-days', '1', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { crt, key };
}

/** A CA in `dir` (created) signed by `parent`: dir/ca.crt, dir/ca.key; certificates it issues carry it (and its parents but the root) after the leaf. */
export async function makeIntermediateCa(parent: Ca, dir: string, name: string): Promise<Ca> {
  await mkdir(dir, { recursive: true });
  const crt = join(dir, 'ca.crt');
  const key = join(dir, 'ca.key');
  const csr = join(dir, 'ca.csr');
  const ext = join(dir, 'ext.cnf');
  await writeFile(ext, 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  await execTracked('openssl', ['req', ...EC, '-keyout', key, '-out', csr, '-subj', `/CN=${name}`]);
  await execTracked('openssl', ['x509', '-req', '-in', csr, '-CA', parent.crt, '-CAkey', parent.key, '-CAcreateserial', '-out', crt, '-days', '1', '-extfile', ext]);
  return { crt, key, root: parent.root ?? parent.crt, chain: [crt, ...(parent.chain ?? [])] };
}

export type Usage = 'serverAuth' | 'clientAuth';

/**
 * A certificate for `dnsNames` (none: a client certificate named by `commonName` alone), signed
 * by `ca`, for the given usages (default: server and client), in `dir` (created) as tls.crt (with
 * `ca`'s chain after it when `ca` is an intermediate), tls.key and ca.crt (the root), valid for
 * `days` (negative: expired). Resolves with `dir`.
 */
export async function issueCert(
  ca: Ca,
  dir: string,
  dnsNames: readonly string[],
  days = 1,
  opts: { readonly usages?: readonly Usage[]; readonly commonName?: string } = {},
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const key = join(dir, 'tls.key');
  const csr = join(dir, 'tls.csr');
  const ext = join(dir, 'ext.cnf');
  const san = dnsNames.length === 0 ? '' : `subjectAltName=${dnsNames.map((n) => `DNS:${n}`).join(',')}\n`;
  await writeFile(ext, `${san}extendedKeyUsage=${(opts.usages ?? ['serverAuth', 'clientAuth']).join(',')}\nbasicConstraints=CA:FALSE\n`);
  await execTracked('openssl', ['req', ...EC, '-keyout', key, '-out', csr, '-subj', `/CN=${opts.commonName ?? dnsNames[0] ?? 'node'}`]);
  await execTracked('openssl', [
    'x509', '-req', '-in', csr, '-CA', ca.crt, '-CAkey', ca.key, '-CAcreateserial', '-out', join(dir, 'tls.crt'), '-days', String(days), '-extfile', ext,
  ]);
  // As cert-manager lays out a certificate from an intermediate: the chain in tls.crt, the root in ca.crt.
  for (const intermediate of ca.chain ?? []) await appendFile(join(dir, 'tls.crt'), await readFile(intermediate));
  await copyFile(ca.root ?? ca.crt, join(dir, 'ca.crt'));
  return dir;
}
