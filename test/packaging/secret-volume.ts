// Secret volumes of a played pod, written the way the kubelet writes them (its AtomicWriter,
// pkg/volume/util/atomic_writer.go): the files in a timestamped directory, `..data` a symlink to
// it, and each key a symlink through `..data`. An update writes a new directory and swaps `..data`
// in one rename, so a reader sees all old files or all new ones: what cert-manager's renewals
// look like to nginx's reload watch and to the sidecar.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Secret } from '@kubernetes/client-node';
import type { KubeObject } from './helm.js';
import { allContainers, ofKind, podSpec } from './k8s-objects.js';

let generation = 0;

/** Writes (or replaces, atomically) the volume's files under `dir`: key → content. */
export function writeSecretVolume(dir: string, files: Readonly<Record<string, Buffer | string>>): void {
  mkdirSync(dir, { recursive: true });
  const previous = readdirSync(dir).filter((n) => n.startsWith('..') && n !== '..data');
  const version = `..${new Date().toISOString().replace(/[-:]/g, '_')}.${process.pid}.${++generation}`;
  mkdirSync(join(dir, version));
  for (const [key, content] of Object.entries(files)) writeFileSync(join(dir, version, key), content, { mode: 0o444 });
  symlinkSync(version, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const key of Object.keys(files)) if (!existsSync(join(dir, key))) symlinkSync(join('..data', key), join(dir, key));
  for (const old of previous) rmSync(join(dir, old), { recursive: true, force: true });
}

/** A Secret's data, decoded. */
export function secretFiles(secret: V1Secret): Record<string, Buffer> {
  return Object.fromEntries(Object.entries(secret.data ?? {}).map(([key, b64]) => [key, Buffer.from(b64, 'base64')]));
}

/**
 * Writes every Secret volume of the rendered pod where its containers mount it, from `secrets`
 * (the cluster's Secrets: with generated certificates, every pod of a release mounts the same
 * ones, not a render of its own). Returns the mount directories by Secret name.
 */
export function materializeSecrets(objects: readonly KubeObject[], secrets: readonly KubeObject[]): Map<string, string[]> {
  const spec = podSpec(objects);
  const byName = new Map(ofKind(secrets, 'Secret').map((s) => [s.metadata?.name ?? '', s]));
  const dirs = new Map<string, string[]>();
  for (const volume of spec.volumes ?? []) {
    const name = volume.secret?.secretName;
    if (name === undefined) continue;
    const secret = byName.get(name);
    if (secret === undefined) throw new Error(`volume ${volume.name} mounts Secret ${name}, which is not among the cluster's Secrets`);
    for (const { container } of allContainers(spec).values()) {
      for (const mount of container.volumeMounts ?? []) {
        if (mount.name !== volume.name) continue;
        writeSecretVolume(mount.mountPath, secretFiles(secret));
        dirs.set(name, [...(dirs.get(name) ?? []), mount.mountPath]);
      }
    }
  }
  return dirs;
}
