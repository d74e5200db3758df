// The metric names a PromQL expression reads, found without a parser: promtool (check rules)
// proves each expression parses; this only has to tell names from functions, keywords, labels,
// strings and durations in an expression that does parse.

/** Words that are never metric names where they stand (the rest of the language's words are followed by "("). */
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'atan2', 'inf', 'nan']);

/** Every distinct metric name `expr` selects, in order of first appearance. */
export function metricNames(expr: string): string[] {
  const bare = expr
    // strings (label values, regexes), with their escapes
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    // label matchers, ranges and subqueries
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    // label lists of aggregations and vector matching, with their keyword: `sum by (x) (…)` is a call of sum
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    // comments
    .replace(/#.*$/gm, ' ');
  const names: string[] = [];
  // An identifier not glued to a number (1e-05, 5m) and not a function or aggregation call.
  for (const m of bare.matchAll(/(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    const word = m[1]!;
    if (KEYWORDS.has(word.toLowerCase()) || names.includes(word)) continue;
    names.push(word);
  }
  return names;
}
