// Reading nginx configuration text that this repository writes itself (the shipped snippets, the
// chart's rendered nginx.conf, the harness configs): one directive per line, blocks opened at
// the end of a line and closed by a line of their own. For comparing such files line by line
// (Plus against OSS, the chart against the examples) that is all the syntax needed; a general
// parser (crossplane is Python; the npm ones model files for editing) would add nothing.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Trimmed lines without blanks and comment lines (these files put comments on lines of their own). */
export function meaningfulLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** The lines, with every `include apigw-syncer/<path>;` replaced by that snippet's lines (recursively). */
export function inlineSnippets(lines: readonly string[], snippetsDir: string): string[] {
  return lines.flatMap((line) => {
    const m = /^include apigw-syncer\/(\S+);$/.exec(line);
    return m?.[1] === undefined ? [line] : inlineSnippets(meaningfulLines(readFileSync(join(snippetsDir, m[1]), 'utf8')), snippetsDir);
  });
}

/** The lines inside the first block opened by a line equal to `opener` (e.g. "stream {"); throws if there is none. */
export function blockLines(lines: readonly string[], opener: string): string[] {
  const start = lines.indexOf(opener);
  if (start < 0) throw new Error(`no "${opener}" block`);
  let depth = 1;
  for (let i = start + 1; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.endsWith('{')) depth++;
    if (line === '}' && --depth === 0) return lines.slice(start + 1, i);
  }
  throw new Error(`"${opener}" block is not closed`);
}

/** The server{} blocks of the http{} block, each as its lines, in order. */
export function httpServers(lines: readonly string[]): string[][] {
  const http = blockLines(lines, 'http {');
  const servers: string[][] = [];
  for (let rest = http; rest.includes('server {'); ) {
    const body = blockLines(rest, 'server {');
    servers.push(body);
    rest = rest.slice(rest.indexOf('server {') + body.length + 2);
  }
  return servers;
}

/** The directive names of the lines, in order (closing braces left out). */
export function directiveNames(lines: readonly string[]): string[] {
  return lines.filter((l) => l !== '}').map((l) => l.split(/\s+/)[0] ?? '');
}

/** The arguments of every `name ...;` line, in order. */
export function directiveArgs(lines: readonly string[], name: string): string[][] {
  return lines.filter((l) => l.startsWith(`${name} `) && l.endsWith(';')).map((l) => l.slice(name.length, -1).trim().split(/\s+/));
}

/** An nginx size ("12k", "16k", "1m", "512") in bytes. */
export function sizeBytes(size: string): number {
  const m = /^(\d+)([kKmM]?)$/.exec(size);
  if (m?.[1] === undefined) throw new Error(`not an nginx size: ${size}`);
  const unit = m[2]?.toLowerCase();
  return Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 * 1024 : 1);
}
