// Runs the Go-built helm (path from test/support/tools.ts) on the chart and parses what it renders.
import { accessSync, constants, copyFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { describeExit, runTracked } from '../support/processes.js';
import { toolPaths, toolVersions } from '../support/tools.js';
import { repoRoot } from '../support/repo-root.js';

export const CHART_DIR = join(repoRoot(), 'helm', 'apigw-syncer');

/** A rendered Kubernetes object; fields are read through the narrow accessors in k8s-objects.ts. */
export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly [key: string]: unknown };
  readonly [key: string]: unknown;
}

export interface HelmResult {
  readonly code: number;
  readonly stdout: string;
  /** Without helm's "found symbolic link" notices: the chart links to nginx-snippets/ and roles/ on purpose. */
  readonly stderr: string;
}

/** helm only: these tests must not wait for the Kubernetes binaries to be built. */
export function helmBin(): string {
  const helm = toolPaths({ check: false }).helm;
  try {
    accessSync(helm, constants.X_OK);
  } catch {
    throw new Error(`${helm} is missing: run \`bash test/tooling/build-go-tools.sh\` (npm test's pretest does)`);
  }
  return helm;
}

/**
 * The control plane's version: the helm build has no Kubernetes version compiled in (it
 * would claim v1.20 and fail the chart's kubeVersion), and renders should match the
 * API server the tests apply them to.
 */
export function kubeVersion(): string {
  return toolVersions().kubernetes;
}

export async function runHelm(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<HelmResult> {
  const r = await runTracked(helmBin(), args, { env: { ...process.env, ...env } });
  if (r.exit.code === null) throw new Error(`helm ${args.join(' ')}: ${describeExit(r.exit)}: ${r.stderr}`);
  const cleaned = r.stderr
    .split('\n')
    .filter((l) => !l.includes('found symbolic link in path'))
    .join('\n')
    .trim();
  return { code: r.exit.code, stdout: r.stdout, stderr: cleaned };
}

export function parseManifests(text: string): KubeObject[] {
  const out: KubeObject[] = [];
  // YAML 1.1, as Kubernetes' own tooling reads manifests (sigs.k8s.io/yaml on go-yaml v2):
  // `defaultMode: 0444` is octal there (292), but decimal 444 in YAML 1.2, this library's default.
  for (const doc of parseAllDocuments(text, { version: '1.1' })) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (!isKubeObject(value)) throw new Error(`rendered document is not a Kubernetes object: ${JSON.stringify(value).slice(0, 200)}`);
    out.push(value);
  }
  return out;
}

function isKubeObject(v: unknown): v is KubeObject {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  const meta = o['metadata'];
  return typeof o['apiVersion'] === 'string' && typeof o['kind'] === 'string' && typeof meta === 'object' && meta !== null && typeof (meta as Record<string, unknown>)['name'] === 'string';
}

/**
 * What the README's install command sets beyond the defaults: the syncer image's registry (the
 * chart has no public default to pull from). Every render starts from it unless told not to.
 */
export const INSTALL_VALUES = { syncer: { image: { registry: 'registry.example.com' } } } as const;
export const INSTALL_SET = ['--set', 'syncer.image.registry=registry.example.com'] as const;

export interface TemplateOptions {
  /** false: the chart's defaults alone, without INSTALL_VALUES (to see what the schema refuses). */
  readonly installValues?: boolean;
  readonly release?: string;
  readonly namespace?: string;
  /** Written to a values file: typed values, no --set string-parsing surprises. */
  readonly values?: Readonly<Record<string, unknown>>;
  readonly chart?: string;
  readonly extraArgs?: readonly string[];
}

/** Runs `helm <command> [release] <chart> ... --values <install> --values <values>`, the values written to files. */
async function withValues(command: 'template' | 'lint', opts: TemplateOptions, args: readonly string[]): Promise<HelmResult> {
  const dir = mkdtempSync(join(tmpdir(), 'apigw-helm-values-'));
  try {
    const valuesFile = join(dir, 'values.yaml');
    writeFileSync(valuesFile, stringify(opts.values ?? {}));
    const installFile = join(dir, 'install.yaml');
    writeFileSync(installFile, stringify(INSTALL_VALUES));
    return await runHelm([
      command,
      ...args,
      opts.chart ?? CHART_DIR,
      '--namespace',
      opts.namespace ?? 'apigw',
      '--kube-version',
      kubeVersion(),
      ...(opts.installValues === false ? [] : ['--values', installFile]),
      '--values',
      valuesFile,
      ...(opts.extraArgs ?? []),
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `helm template` with a values file; resolves to the raw result (for tests that expect failure). */
export function helmTemplate(opts: TemplateOptions = {}): Promise<HelmResult> {
  return withValues('template', opts, [opts.release ?? 'apigw']);
}

/** `helm lint --strict` with the same values files as helmTemplate. */
export function helmLint(opts: TemplateOptions = {}): Promise<HelmResult> {
  return withValues('lint', opts, ['--strict']);
}

/** `helm template` that must succeed; returns the parsed objects. */
export async function render(opts: TemplateOptions = {}): Promise<KubeObject[]> {
  const r = await helmTemplate(opts);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}): ${r.stderr}`);
  return parseManifests(r.stdout);
}

export interface NotesRenderer {
  /** NOTES.txt as `helm install` with these values would print it. */
  notes(values: Readonly<Record<string, unknown>>): Promise<string>;
  /** Deletes the chart copy. */
  remove(): void;
}

/**
 * helm template does not print NOTES.txt: a copy of the chart renders it into a ConfigMap too
 * (tpl of the same text, with the same values and named templates).
 */
export function notesRenderer(): NotesRenderer {
  const dir = mkdtempSync(join(tmpdir(), 'apigw-notes-'));
  const chart = join(dir, 'apigw-syncer');
  cpSync(CHART_DIR, chart, { recursive: true, dereference: true });
  copyFileSync(join(chart, 'templates', 'NOTES.txt'), join(chart, 'files', 'notes.txt'));
  writeFileSync(
    join(chart, 'templates', 'zz-notes.yaml'),
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ tpl (.Files.Get "files/notes.txt") . | quote }}\n',
  );
  return {
    notes: async (values) => {
      const cm = (await render({ chart, values })).find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'notes');
      return String((cm?.['data'] as Record<string, unknown> | undefined)?.['notes'] ?? '');
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
