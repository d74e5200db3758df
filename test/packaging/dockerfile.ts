// A small Dockerfile reader, so tests start the app exactly as the image would (ENTRYPOINT,
// CMD, WORKDIR, ENV, USER of the final stage) instead of repeating those facts by hand.
// Covers what our Dockerfile uses: comments, line continuations, FROM … AS name, exec-form
// JSON arrays, and ENV key=value pairs. Anything else is kept as raw text.
import { join } from 'node:path';
import { nodeRuntimePath } from '../support/tools.js';

export interface Instruction {
  readonly keyword: string; // upper-case, e.g. "RUN"
  readonly args: string; // everything after the keyword, continuations joined
}

export interface Stage {
  readonly name: string | undefined;
  readonly from: string;
  readonly instructions: readonly Instruction[];
}

export interface RuntimeSpec {
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly workdir: string | undefined;
  readonly env: Readonly<Record<string, string>>;
  readonly user: string | undefined;
}

/** Splits the text into instructions: "#" lines are comments, a trailing "\" continues a line. */
export function parseInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (pending === '' && (line.trim() === '' || line.trimStart().startsWith('#'))) continue;
    if (pending !== '' && line.trimStart().startsWith('#')) continue; // comments inside continuations
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/s.exec(full);
    if (m?.[1] !== undefined) out.push({ keyword: m[1].toUpperCase(), args: (m[2] ?? '').trim() });
  }
  return out;
}

export function parseStages(text: string): Stage[] {
  const stages: { name: string | undefined; from: string; instructions: Instruction[] }[] = [];
  for (const ins of parseInstructions(text)) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m?.[1]) throw new Error(`cannot parse FROM ${ins.args}`);
      stages.push({ name: m[2], from: m[1], instructions: [] });
    } else {
      const current = stages.at(-1);
      if (current) current.instructions.push(ins); // ARG before the first FROM has no stage
    }
  }
  return stages;
}

/** An exec-form argument list; shell form is refused because the app would not be PID 1. */
export function execForm(keyword: string, args: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    throw new Error(`${keyword} must be exec form (a JSON array), got: ${args}`);
  }
  if (!Array.isArray(parsed) || !parsed.every((a): a is string => typeof a === 'string')) {
    throw new Error(`${keyword} must be a JSON array of strings, got: ${args}`);
  }
  return parsed;
}

/** ENV key=value … (quotes allowed) or the legacy ENV key value. */
function parseEnv(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!args.includes('=')) {
    const [key, ...rest] = args.split(/\s+/);
    if (key) out[key] = rest.join(' ');
    return out;
  }
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g;
  for (const m of args.matchAll(re)) {
    const [, key, value = ''] = m;
    if (key) out[key] = value.startsWith('"') ? (JSON.parse(value) as string) : value;
  }
  return out;
}

/** The ARGs declared before the first FROM, with their defaults ('' when none): what FROM lines may use. */
export function globalArgs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const ins of parseInstructions(text)) {
    if (ins.keyword === 'FROM') break;
    if (ins.keyword !== 'ARG') continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/.exec(ins.args);
    if (m?.[1] !== undefined) out[m[1]] = m[2] ?? '';
  }
  return out;
}

/**
 * Docker's variable substitution, for the forms the Dockerfile uses: $X, ${X}, ${X:-word}
 * (X unless empty, else word) and ${X:+word} (word if X is set and not empty, else nothing).
 */
export function substitute(text: string, vars: Readonly<Record<string, string>>): string {
  return text.replace(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g, (_all, braced?: string, op?: string, word?: string, bare?: string) => {
    const value = vars[braced ?? bare ?? ''] ?? '';
    if (op === '-') return value === '' ? (word ?? '') : value;
    if (op === '+') return value === '' ? '' : (word ?? '');
    return value;
  });
}

/** Each stage's base image as a build with these --build-arg values would pull it. */
export function resolvedBases(text: string, buildArgs: Readonly<Record<string, string>> = {}): string[] {
  const vars = { ...globalArgs(text), ...buildArgs };
  return parseStages(text).map((s) => substitute(s.from, vars));
}

/** What `docker run` would use from the last stage. */
export function runtimeSpec(text: string): RuntimeSpec {
  const last = parseStages(text).at(-1);
  if (!last) throw new Error('Dockerfile has no FROM');
  let entrypoint: string[] = [];
  let cmd: string[] = [];
  let workdir: string | undefined;
  let user: string | undefined;
  const env: Record<string, string> = {};
  for (const ins of last.instructions) {
    switch (ins.keyword) {
      case 'ENTRYPOINT':
        entrypoint = execForm('ENTRYPOINT', ins.args);
        break;
      case 'CMD':
        cmd = execForm('CMD', ins.args);
        break;
      case 'WORKDIR':
        workdir = ins.args;
        break;
      case 'USER':
        user = ins.args;
        break;
      case 'ENV':
        Object.assign(env, parseEnv(ins.args));
        break;
      default:
        break;
    }
  }
  return { entrypoint, cmd, workdir, env, user };
}

/**
 * Where a checkout holds what the image's WORKDIR holds, to run the ENTRYPOINT from: the build
 * stage's directory the runtime stage copies to "./" (COPY --from=build /src/dist/bundle ./ →
 * dist/bundle), else the checkout itself.
 */
export function imageAppDir(text: string, root: string): string {
  const last = parseStages(text).at(-1);
  for (const copy of (last?.instructions ?? []).filter((i) => i.keyword === 'COPY')) {
    const m = /^--from=\S+\s+\/src\/(\S+)\s+\.\/?$/.exec(copy.args);
    if (m?.[1] !== undefined) return join(root, m[1]);
  }
  return root;
}

/**
 * The image's ENTRYPOINT + CMD (+ extra args) as this machine runs them from the app dir:
 * "node" resolves through the image's PATH, here to this test's node.
 */
export function imageArgv(spec: RuntimeSpec, ...extra: string[]): string[] {
  // The image's `node`: the same version here (NODE_RUNTIME_VERSION), not the machine's Node.
  return [...spec.entrypoint, ...spec.cmd, ...extra].map((a, i) => (i === 0 && a === 'node' ? nodeRuntimePath() : a));
}
