// The bench's output: one row per figure, the floor of the same run beside it, the ratio, and the
// issue's target with whether it holds; printed as a markdown table and written as JSON.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Target {
  /** 'max': the value (or ratio) must be ≤ limit; 'min': ≥ limit. */
  readonly kind: 'max' | 'min';
  readonly limit: number;
  /** Whether the target applies to the ratio or to the value itself. */
  readonly on: 'ratio' | 'value';
}

export interface Row {
  readonly figure: string;
  readonly peers: number | null;
  readonly unit: string;
  /** The floor measured in the same run, when the figure has one. */
  readonly floor: number | null;
  /** Per sidecar build (A, and B when compared): its value. */
  readonly values: Readonly<Record<string, number>>;
  readonly target?: Target;
}

export interface Report {
  readonly machine: Readonly<Record<string, unknown>>;
  readonly settings: Readonly<Record<string, unknown>>;
  readonly builds: Readonly<Record<string, string>>;
  readonly rows: readonly Row[];
  readonly wallSeconds: number;
}

export function ratio(row: Row, build: string): number | null {
  const v = row.values[build];
  return v === undefined || row.floor === null || row.floor === 0 ? null : v / row.floor;
}

export function met(row: Row, build: string): boolean | null {
  if (row.target === undefined) return null;
  const x = row.target.on === 'ratio' ? ratio(row, build) : (row.values[build] ?? null);
  if (x === null || !Number.isFinite(x)) return null;
  return row.target.kind === 'max' ? x <= row.target.limit : x >= row.target.limit;
}

const num = (x: number | null | undefined, digits = 2): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x >= 100 ? x.toFixed(0) : x.toFixed(digits));

function describeTarget(t: Target | undefined): string {
  if (t === undefined) return '';
  return `${t.on === 'ratio' ? 'ratio ' : ''}${t.kind === 'max' ? '≤' : '≥'} ${t.limit}`;
}

export function markdown(report: Report): string {
  const builds = Object.keys(report.builds);
  const head = ['figure', 'peers', 'unit', 'floor', ...builds.flatMap((b) => [b, `${b}/floor`]), 'target', ...builds.map((b) => `met ${b}`)];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const row of report.rows) {
    const cells = [
      row.figure,
      row.peers === null ? '' : String(row.peers),
      row.unit,
      num(row.floor),
      ...builds.flatMap((b) => [num(row.values[b]), num(ratio(row, b))]),
      describeTarget(row.target),
      ...builds.map((b) => {
        const m = met(row, b);
        return m === null ? '' : m ? 'yes' : '**no**';
      }),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Writes a report as JSON under `dir`, as `<name>-<time>.json`; returns the file's path. */
export function writeJson(report: object, dir: string, name = 'bench'): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
  return path;
}
