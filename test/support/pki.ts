// A throwaway certificate authority for tests, made with the openssl command line: a CA, and
// server or client certificates it signs with the names and validity a test asks for
// (an expired one included: openssl accepts a negative number of days).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeExit, runTracked } from './processes.js';

export interface IssuedCert {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface CertRequest {
  /** subjectAltName DNS entries. */
  readonly dns?: readonly string[];
  /** subjectAltName IP entries. */
  readonly ips?: readonly string[];
  /** A client certificate (extendedKeyUsage clientAuth) instead of a server one. */
  readonly client?: boolean;
  /** Validity; negative makes a certificate that has already expired. */
  readonly days?: number;
}

async function openssl(args: readonly string[], cwd: string): Promise<void> {
  const r = await runTracked('openssl', args, { cwd });
  if (r.exit.code !== 0) throw new Error(`openssl ${args.join(' ')} failed (${describeExit(r.exit)}): ${r.stderr}`);
}

function writeKey(path: string): void {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o600 });
}

export class TestCa {
  private constructor(
    private readonly dir: string,
    readonly name: string,
    readonly certFile: string,
    readonly keyFile: string,
  ) {}

  /** A self-signed CA named `name`, its files in `dir`. */
  static async create(dir: string, name: string): Promise<TestCa> {
    mkdirSync(dir, { recursive: true });
    const keyFile = join(dir, `${name}-ca.key`);
    const certFile = join(dir, `${name}-ca.crt`);
    writeKey(keyFile);
    const ext = join(dir, `${name}-ca.ext`);
    writeFileSync(ext, '[v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n');
    await openssl(['req', '-x509', '-new', '-key', keyFile, '-subj', `/CN=${name}`, '-days', '3650', '-config', ext, '-extensions', 'v3_ca', '-out', certFile], dir);
    return new TestCa(dir, name, certFile, keyFile);
  }

  /** A certificate for `file` (its base name), signed by this CA. */
  async issue(file: string, req: CertRequest): Promise<IssuedCert> {
    const keyFile = join(this.dir, `${file}.key`);
    const certFile = join(this.dir, `${file}.crt`);
    const csr = join(this.dir, `${file}.csr`);
    const ext = join(this.dir, `${file}.ext`);
    writeKey(keyFile);
    const san = [...(req.dns ?? []).map((d) => `DNS:${d}`), ...(req.ips ?? []).map((ip) => `IP:${ip}`)];
    writeFileSync(
      ext,
      [
        'basicConstraints = CA:FALSE',
        'keyUsage = critical,digitalSignature',
        `extendedKeyUsage = ${req.client === true ? 'clientAuth' : 'serverAuth'}`,
        ...(san.length > 0 ? [`subjectAltName = ${san.join(',')}`] : []),
        '',
      ].join('\n'),
    );
    await openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${file}`, '-out', csr], this.dir);
    await openssl(
      ['x509', '-req', '-in', csr, '-CA', this.certFile, '-CAkey', this.keyFile, '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', String(req.days ?? 30), '-extfile', ext, '-out', certFile],
      this.dir,
    );
    return { certFile, keyFile };
  }
}
