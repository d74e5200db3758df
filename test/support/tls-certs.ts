// Test certificates made with the openssl CLI: a CA, and certificates it signs laid out as a
// kubernetes.io/tls Secret with ca.crt is mounted (tls.crt, tls.key, ca.crt in one directory),
// the way cert-manager writes them. Short-lived (one day, or already expired on request: openssl
// takes a negative number of days), EC P-256, for loopback tests only.
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execTracked } from './processes.js';

export interface Ca {
  readonly crt: string;
  readonly key: string;
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

export type Usage = 'serverAuth' | 'clientAuth';

/**
 * A certificate for `dnsNames` (none: a client certificate named by `commonName` alone), signed
 * by `ca`, for the given usages (default: server and client), in `dir` (created) as tls.crt,
 * tls.key and ca.crt, valid for `days` (negative: expired). Resolves with `dir`.
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
  await copyFile(ca.crt, join(dir, 'ca.crt'));
  return dir;
}
