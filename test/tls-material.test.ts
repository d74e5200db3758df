// TLS material for https probes, in-process with real files made by openssl: what is refused at
// load (with which message), when two loads count as the same material, and the watch that
// follows rotations — reported once, unchanged files not reported, a failed round reported and
// survived, nothing at all once stopped. Rounds are counted through the watcher's loader.
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadTlsMaterial, watchTlsMaterial, type LoadedTls, type TlsFiles, type TlsWatcher } from '../sidecar/probe/tls-material.js';
import { issueCert, makeCa, type Ca } from './support/tls-certs.js';
import { waitFor } from './support/wait.js';

/** Short, so that a test sees many rounds; the watch's behaviour does not depend on it. */
const INTERVAL_MS = 5;

let dir: string;
let ca: Ca;
let otherCa: Ca;
/** A certificate and key from `ca`, and a second pair whose key belongs to another certificate. */
let leaf: { crt: string; key: string };
let otherLeafKey: string;

t.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'apigw-tls-material-'));
  [ca, otherCa] = await Promise.all([makeCa(join(dir, 'ca'), 'peers'), makeCa(join(dir, 'other-ca'), 'other')]);
  const [leafDir, otherDir] = await Promise.all([issueCert(ca, join(dir, 'leaf'), ['peer.test']), issueCert(ca, join(dir, 'other-leaf'), ['other.test'])]);
  leaf = { crt: join(leafDir, 'tls.crt'), key: join(leafDir, 'tls.key') };
  otherLeafKey = join(otherDir, 'tls.key');
});
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const tlsFiles = (files: Partial<TlsFiles>): TlsFiles => ({ caFile: undefined, certFile: undefined, keyFile: undefined, servername: undefined, ...files });

/** Writes `content` to `path` the way a rotation does: whole, at once (rename over the old file). */
function replaceFile(path: string, content: string | Buffer): void {
  writeFileSync(`${path}.new`, content);
  renameSync(`${path}.new`, path);
}

let fileSeq = 0;
/** A new file in the test directory holding `content`. */
function fileWith(content: string | Buffer): string {
  const path = join(dir, `file-${++fileSeq}.pem`);
  writeFileSync(path, content);
  return path;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

t.test('an unreadable file is named with its setting and the reason', async (t) => {
  const absent = join(dir, 'absent.pem');
  await t.rejects(loadTlsMaterial(tlsFiles({ caFile: absent })), { message: `cannot read SYNCER_PROBE_CA_FILE ${absent}: ENOENT` });
  await t.rejects(loadTlsMaterial(tlsFiles({ certFile: absent, keyFile: leaf.key })), { message: `cannot read SYNCER_PROBE_CERT_FILE ${absent}: ENOENT` });
  await t.rejects(loadTlsMaterial(tlsFiles({ certFile: leaf.crt, keyFile: absent })), { message: `cannot read SYNCER_PROBE_KEY_FILE ${absent}: ENOENT` });
});

t.test('unusable material is refused at load, naming exactly the files given and the reason', async (t) => {
  const noCert = fileWith('# a CA bundle with the certificates left out\n');
  await t.rejects(loadTlsMaterial(tlsFiles({ caFile: noCert })), { message: `TLS material is not usable (${noCert}): the CA file holds no PEM certificate` });
  // A key that belongs to another certificate: OpenSSL's reason follows the files.
  await t.rejects(loadTlsMaterial(tlsFiles({ certFile: leaf.crt, keyFile: otherLeafKey })), {
    message: new RegExp(`^TLS material is not usable \\(${escape(leaf.crt)}, ${escape(otherLeafKey)}\\): .*key values mismatch`),
  });
  await t.rejects(loadTlsMaterial(tlsFiles({ caFile: ca.crt, certFile: leaf.crt, keyFile: otherLeafKey })), {
    message: new RegExp(`^TLS material is not usable \\(${escape(ca.crt)}, ${escape(leaf.crt)}, ${escape(otherLeafKey)}\\): `),
  });
  // A client certificate that is not PEM at all.
  const garbage = fileWith('not a certificate\n');
  await t.rejects(loadTlsMaterial(tlsFiles({ certFile: garbage, keyFile: leaf.key })), { message: new RegExp(`^TLS material is not usable \\(${escape(garbage)}, `) });
  const loaded = await loadTlsMaterial(tlsFiles({ caFile: ca.crt, certFile: leaf.crt, keyFile: leaf.key, servername: 'peer.test' }));
  t.equal(loaded.options.servername, 'peer.test', 'usable material loads');
  t.same(loaded.options.ca, readFileSync(ca.crt));
});

t.test('equal content is equal material wherever it lies; a certificate moved to another file is not', async (t) => {
  const caPem = readFileSync(ca.crt, 'latin1');
  const leafPem = readFileSync(leaf.crt, 'latin1');
  const files = tlsFiles({ caFile: ca.crt, certFile: leaf.crt, keyFile: leaf.key });
  const copies = tlsFiles({ caFile: fileWith(caPem), certFile: fileWith(leafPem), keyFile: fileWith(readFileSync(leaf.key)) });
  t.equal((await loadTlsMaterial(copies)).digest, (await loadTlsMaterial(files)).digest, 'copies of the files: the same digest');
  // The same bytes end to end, split differently: the leaf trusted as a CA, or sent twice in the chain.
  const leafAlsoTrusted = await loadTlsMaterial(tlsFiles({ caFile: fileWith(caPem + leafPem), certFile: fileWith(leafPem), keyFile: leaf.key }));
  const leafSentTwice = await loadTlsMaterial(tlsFiles({ caFile: fileWith(caPem), certFile: fileWith(leafPem + leafPem), keyFile: leaf.key }));
  t.not(leafAlsoTrusted.digest, leafSentTwice.digest);
});

interface Watched {
  readonly watcher: TlsWatcher;
  readonly changed: LoadedTls[];
  readonly failed: Error[];
  /** Rounds started so far (calls of the loader). */
  rounds(): number;
}

/** Watches `files` from `current`; `gate`, when given, holds every round's read until it resolves. */
function watch(t: { teardown(fn: () => void): void }, files: TlsFiles, current: LoadedTls, gate?: Promise<void>): Watched {
  const changed: LoadedTls[] = [];
  const failed: Error[] = [];
  let rounds = 0;
  const load = async (f: TlsFiles): Promise<LoadedTls> => {
    rounds++;
    await gate;
    return loadTlsMaterial(f);
  };
  const watcher = watchTlsMaterial(files, current, INTERVAL_MS, (tls) => changed.push(tls), (err) => failed.push(err), load);
  t.teardown(() => watcher.stop());
  return { watcher, changed, failed, rounds: () => rounds };
}

/** Waits for `n` more rounds of `w` than it had when called. */
async function roundsPass(w: Watched, n: number): Promise<void> {
  const target = w.rounds() + n;
  await waitFor(() => w.rounds() >= target, `${n} rounds of the TLS watch`);
}

t.test('unchanged files are not reported; a rotation is reported once, with the new material', async (t) => {
  const files = tlsFiles({ caFile: fileWith(readFileSync(ca.crt)) });
  const w = watch(t, files, await loadTlsMaterial(files));
  await roundsPass(w, 3);
  t.same(w.changed, [], 'nothing to report while the files stay the same');
  replaceFile(files.caFile!, readFileSync(otherCa.crt));
  await waitFor(() => w.changed.length > 0, 'the rotation to be reported');
  const rotated = await loadTlsMaterial(files);
  await roundsPass(w, 3);
  t.same(
    w.changed.map((c) => c.digest),
    [rotated.digest],
    'reported once',
  );
  t.same(w.changed[0]!.options.ca, readFileSync(otherCa.crt));
  t.same(w.failed, []);
});

t.test('a round that fails is reported and the old material kept; the next rounds go on', async (t) => {
  const caFile = fileWith(readFileSync(ca.crt));
  const files = tlsFiles({ caFile });
  const w = watch(t, files, await loadTlsMaterial(files));
  renameSync(caFile, `${caFile}.away`);
  await waitFor(() => w.failed.length > 0, 'the failed round to be reported');
  t.match(w.failed[0]!.message, `cannot read SYNCER_PROBE_CA_FILE ${caFile}: ENOENT`);
  renameSync(`${caFile}.away`, caFile);
  // Back to the material in use: the rounds that read it report nothing (the failure changed nothing).
  await roundsPass(w, 3);
  t.same(w.changed, [], 'the same material as before the failure is not reported');
  replaceFile(caFile, readFileSync(otherCa.crt));
  await waitFor(() => w.changed.length === 1, 'the rounds to go on and see a rotation');
});

t.test('stop() ends the watch: no round after it, and a round under way reports nothing', async (t) => {
  // A control watch on files of its own: its rounds are the measure of time passing.
  const controlFiles = tlsFiles({ caFile: ca.crt });
  const control = watch(t, controlFiles, await loadTlsMaterial(controlFiles));

  // Stopped between rounds, then rotated.
  const idleFiles = tlsFiles({ caFile: fileWith(readFileSync(ca.crt)) });
  const idle = watch(t, idleFiles, await loadTlsMaterial(idleFiles));
  await roundsPass(idle, 1);
  idle.watcher.stop();
  const idleRounds = idle.rounds();
  replaceFile(idleFiles.caFile!, readFileSync(otherCa.crt));

  // Stopped while a round waits for its read: one whose files rotated, one whose files are gone.
  let open = (): void => undefined;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const rotatingFiles = tlsFiles({ caFile: fileWith(readFileSync(ca.crt)) });
  const rotating = watch(t, rotatingFiles, await loadTlsMaterial(rotatingFiles), gate);
  const vanishingFiles = tlsFiles({ caFile: fileWith(readFileSync(ca.crt)) });
  const vanishing = watch(t, vanishingFiles, await loadTlsMaterial(vanishingFiles), gate);
  await waitFor(() => rotating.rounds() === 1 && vanishing.rounds() === 1, 'both rounds to wait on their reads');
  replaceFile(rotatingFiles.caFile!, readFileSync(otherCa.crt));
  rmSync(vanishingFiles.caFile!);
  rotating.watcher.stop();
  vanishing.watcher.stop();
  open();

  await roundsPass(control, 5);
  t.same([idle.rounds() - idleRounds, idle.changed.length, idle.failed.length], [0, 0, 0], 'stopped between rounds: no round, nothing reported');
  t.same([rotating.rounds(), rotating.changed.length, rotating.failed.length], [1, 0, 0], 'stopped mid-round on rotated files: nothing reported, no next round');
  t.same([vanishing.rounds(), vanishing.changed.length, vanishing.failed.length], [1, 0, 0], 'stopped mid-round on missing files: nothing reported, no next round');
});
