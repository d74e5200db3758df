// Runs the Go-built promtool (test/tooling/build-prometheus-tools.sh) on rule files: `check
// rules` (syntax, PromQL, templates, lint) and `test rules` (the unit tests of test/alerts/).
import { describeExit, runTracked } from './processes.js';
import { promtoolPath } from './tools.js';

export interface PromtoolResult {
  readonly code: number;
  /** stdout and stderr together: promtool splits its report between them. */
  readonly output: string;
}

async function promtool(args: readonly string[]): Promise<PromtoolResult> {
  const r = await runTracked(promtoolPath(), args, { timeoutMs: 120_000 });
  if (r.exit.code === null) throw new Error(`promtool ${args.join(' ')}: ${describeExit(r.exit)}: ${r.stderr}`);
  return { code: r.exit.code, output: `${r.stdout}${r.stderr}` };
}

/** `promtool check rules` with every linter on. */
export function checkRules(files: readonly string[]): Promise<PromtoolResult> {
  return promtool(['check', 'rules', '--lint=all', '--lint-fatal', ...files]);
}

/** `promtool test rules` on test files (their rule_files are relative to them); `run`: only the groups whose name matches. */
export function testRules(files: readonly string[], run?: string): Promise<PromtoolResult> {
  return promtool(['test', 'rules', ...(run === undefined ? [] : ['--run', run]), ...files]);
}
