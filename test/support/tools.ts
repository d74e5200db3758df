// Paths of the test tools: Go-built etcd, kube-apiserver, kube-controller-manager and helm, and
// the production Node runtime.
// The version pins live in ONE place, test/tooling/versions.env, which
// test/tooling/build-go-tools.sh sources and this module parses; both compute the
// same cache path: ${APIGW_SYNCER_CACHE:-$HOME/.cache/apigw-syncer}/tools/<name>-<version>/<name>.
import { accessSync, constants, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { repoRoot } from './repo-root.js';

export interface ToolVersions {
  kubernetes: string;
  etcd: string;
  helm: string;
}

export interface ToolPaths {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  helm: string;
}

const VERSIONS_REL = join('test', 'tooling', 'versions.env');

function parseEnvFile(path: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Z0-9_]+)=(\S+)$/.exec(line);
    if (!m || m[1] === undefined || m[2] === undefined) throw new Error(`${path}: unsupported line ${JSON.stringify(raw)} (use KEY=value)`);
    out.set(m[1], m[2]);
  }
  return out;
}

export function toolVersions(): ToolVersions {
  const file = join(repoRoot(), VERSIONS_REL);
  const env = parseEnvFile(file);
  const get = (key: string): string => {
    const v = env.get(key);
    if (!v) throw new Error(`${file}: ${key} is not set`);
    return v;
  };
  return { kubernetes: get('KUBERNETES_VERSION'), etcd: get('ETCD_VERSION'), helm: get('HELM_VERSION') };
}

/** ${APIGW_SYNCER_CACHE:-$HOME/.cache/apigw-syncer}/tools */
export function toolsCacheDir(): string {
  const root = process.env['APIGW_SYNCER_CACHE'] || join(process.env['HOME'] || homedir(), '.cache', 'apigw-syncer');
  return resolve(root, 'tools');
}

/** NODE_RUNTIME_VERSION: the production image's Node (and the one npm scripts run on), e.g. "26.10.0". */
export function nodeRuntimeVersion(): string {
  const file = join(repoRoot(), VERSIONS_REL);
  const version = parseEnvFile(file).get('NODE_RUNTIME_VERSION');
  if (!version) throw new Error(`${file}: NODE_RUNTIME_VERSION is not set`);
  return version;
}

/** The production image's Node (NODE_RUNTIME_VERSION), installed by test/tooling/install-node-runtime.sh. */
export function nodeRuntimePath(): string {
  const version = nodeRuntimeVersion();
  const path = join(toolsCacheDir(), `node-${version}`, 'bin', 'node');
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`${path} is missing: run \`bash test/tooling/install-node-runtime.sh\` (npm test's pretest does)`);
  }
  return path;
}

/**
 * Absolute paths of the four binaries. Throws (naming the build script) when one is
 * missing or not executable, unless `check: false`.
 */
export function toolPaths(opts: { check?: boolean } = {}): ToolPaths {
  const v = toolVersions();
  const dir = toolsCacheDir();
  const bin = (name: string, version: string): string => join(dir, `${name}-${version}`, name);
  const paths: ToolPaths = {
    etcd: bin('etcd', v.etcd),
    kubeApiserver: bin('kube-apiserver', v.kubernetes),
    kubeControllerManager: bin('kube-controller-manager', v.kubernetes),
    helm: bin('helm', v.helm),
  };
  if (opts.check !== false) {
    for (const p of Object.values(paths)) {
      try {
        accessSync(p, constants.X_OK);
      } catch {
        throw new Error(`${p} is missing or not executable: run \`bash test/tooling/build-go-tools.sh\` (npm test's pretest does)`);
      }
    }
  }
  return paths;
}
