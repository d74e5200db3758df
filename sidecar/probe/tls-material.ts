// TLS material for https probes: the CA that peers' certificates must chain to, an optional
// client certificate (mTLS), and the name to verify when peers are probed by IP. Mounted Secrets
// rotate (the kubelet swaps the files in place), so the files are read again periodically and,
// when their content changed, the new material replaces the old for new connections.
import { createHash, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { Config } from '../config.js';
import { reportUnexpected } from '../unexpected.js';
import type { TlsOptions } from './peer-channels.js';

export type TlsFiles = Config['probe']['tls'];

export interface LoadedTls {
  readonly options: TlsOptions;
  /** Digest of the files' content: equal material, equal digest. */
  readonly digest: string;
}

/** Reads and checks the material; rejects with a message naming the file and what is wrong. */
export async function loadTlsMaterial(files: TlsFiles): Promise<LoadedTls> {
  const read = async (path: string | undefined, what: string): Promise<Buffer | undefined> => {
    if (path === undefined) return undefined;
    try {
      return await readFile(path);
    } catch (err) {
      throw new Error(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };
  const [ca, cert, key] = await Promise.all([read(files.caFile, 'SYNCER_PROBE_CA_FILE'), read(files.certFile, 'SYNCER_PROBE_CERT_FILE'), read(files.keyFile, 'SYNCER_PROBE_KEY_FILE')]);
  const options: TlsOptions = { ca, cert, key, servername: files.servername };
  try {
    // OpenSSL skips CA text that holds no certificate at all: a CA file must hold at least one.
    if (ca !== undefined) checkCertificates(ca);
    // Fails now, with OpenSSL's reason, on a file that is not PEM or a key that does not match.
    createSecureContext({ ca, cert, key });
  } catch (err) {
    const named = [files.caFile, files.certFile, files.keyFile].filter((f) => f !== undefined).join(', ');
    throw new Error(`TLS material is not usable (${named}): ${(err as Error).message}`);
  }
  const digest = createHash('sha256');
  for (const part of [ca, cert, key]) digest.update(part ?? '').update('\0');
  return { options, digest: digest.digest('hex') };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Throws unless `pem` holds one or more certificates, each of which parses. */
function checkCertificates(pem: Buffer): void {
  const blocks = pem.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new Error('the CA file holds no PEM certificate');
  for (const block of blocks) new X509Certificate(block);
}

export interface TlsWatcher {
  stop(): void;
}

/**
 * Reads the files every `intervalMs` and calls `changed` with new material when their content
 * differs from the last loaded. A failed read (a rotation half done) keeps the old material
 * and is reported to `failed`; the next round tries again.
 */
export function watchTlsMaterial(
  files: TlsFiles,
  current: LoadedTls,
  intervalMs: number,
  changed: (tls: LoadedTls) => void,
  failed: (err: Error) => void,
  /** Reads the files (a test counts rounds through it). */
  load: (files: TlsFiles) => Promise<LoadedTls> = loadTlsMaterial,
): TlsWatcher {
  let last = current.digest;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    // Unref'd: the watch alone never keeps the process alive.
    if (!stopped) timer = setTimeout(round, intervalMs).unref();
  };
  const round = (): void => {
    load(files)
      .then(
        (tls) => {
          if (stopped || tls.digest === last) return;
          changed(tls);
          // Only once in use: material that could not be put to use is tried again next round.
          last = tls.digest;
        },
        (err: unknown) => {
          if (!stopped) failed(err instanceof Error ? err : new Error(String(err)));
        },
      )
      .catch((err: unknown) => reportUnexpected('timer', 'TLS files re-read', err))
      .finally(schedule);
  };
  schedule();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
