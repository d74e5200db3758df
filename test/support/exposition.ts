// The series names a Prometheus text exposition (a /metrics page) declares: each family of a
// `# TYPE` line, with the series a histogram or summary family is made of.

const PARTS: Readonly<Record<string, readonly string[]>> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['_sum', '_count'],
};

export function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE ([A-Za-z_:][\w:]*) (\w+)$/gm)) {
    const family = m[1]!;
    names.add(family);
    for (const suffix of PARTS[m[2]!] ?? []) names.add(`${family}${suffix}`);
  }
  return names;
}
