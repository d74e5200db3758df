// Paths of the test tools: Go-built etcd, kube-apiserver, kube-controller-manager, helm and
// promtool, cert-manager's and the prometheus-operator's CRDs, and the production Node runtime.
// The version pins live in ONE place, test/tooling/versions.env, which
// test/tooling/build-go-tools.sh sources and this module parses; both compute the
// same cache path: ${APIGW_SYNCER_CACHE:-$HOME/.cache/apigw-syncer}/tools/<name>-<version>/<name>.
import { accessSync, constants, existsSync, readFileSync, readdirSync } from 'node:fs';
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

/** One pin of versions.env. */
function pinned(key: string): string {
  const file = join(repoRoot(), VERSIONS_REL);
  const version = parseEnvFile(file).get(key);
  if (!version) throw new Error(`${file}: ${key} is not set`);
  return version;
}

/** NODE_RUNTIME_VERSION: the production image's Node (and the one npm scripts run on), e.g. "26.10.0". */
export function nodeRuntimeVersion(): string {
  return pinned('NODE_RUNTIME_VERSION');
}

/** `path` when it exists with `mode`; otherwise an error naming the script that makes it. */
function installed(path: string, mode: number, script: string): string {
  try {
    accessSync(path, mode);
  } catch {
    throw new Error(`${path} is missing: run \`bash test/tooling/${script}\` (npm test's pretest does)`);
  }
  return path;
}

/** The production image's Node (NODE_RUNTIME_VERSION), installed by test/tooling/install-node-runtime.sh. */
export function nodeRuntimePath(): string {
  return installed(join(toolsCacheDir(), `node-${nodeRuntimeVersion()}`, 'bin', 'node'), constants.X_OK, 'install-node-runtime.sh');
}

/** promtool (PROMETHEUS_VERSION), built by test/tooling/build-prometheus-tools.sh. */
export function promtoolPath(): string {
  return installed(join(toolsCacheDir(), `promtool-${pinned('PROMETHEUS_VERSION')}`, 'promtool'), constants.X_OK, 'build-prometheus-tools.sh');
}

/** The prometheus-operator CRD files (PROMETHEUS_OPERATOR_VERSION), one per kind, from build-prometheus-tools.sh. */
export function prometheusOperatorCrdDir(): string {
  return installed(join(toolsCacheDir(), `prometheus-operator-crds-${pinned('PROMETHEUS_OPERATOR_VERSION')}`), constants.R_OK, 'build-prometheus-tools.sh');
}

/** cert-manager's CRDs (CERT_MANAGER_VERSION), cached by test/tooling/fetch-cert-manager-crds.sh: the YAML files. */
export function certManagerCrdFiles(): string[] {
  const dir = join(toolsCacheDir(), `cert-manager-crds-${pinned('CERT_MANAGER_VERSION')}`);
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.yaml')).map((f) => join(dir, f)) : [];
  if (files.length === 0) throw new Error(`${dir} holds no CRDs: run \`bash test/tooling/fetch-cert-manager-crds.sh\` (npm test's pretest does)`);
  return files;
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
