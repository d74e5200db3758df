// syncer_memory_limit_bytes: the cgroup's memory limit file formats (v2 memory.max, v1
// memory.limit_in_bytes and its "no limit" value), the files read for a /proc/self/cgroup (v2,
// v1, both at once as on hybrid hosts; the own level up to the root), the lowest limit along
// the path read from real files, and the gauge present with a limit and absent without.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { lowestLimit, memoryLimitFiles, parseMemoryLimit } from '../sidecar/telemetry/memory-limit.js';
import { Telemetry } from '../sidecar/telemetry/metrics.js';

t.test('a limit file: bytes, or no limit', async (t) => {
  t.equal(parseMemoryLimit('335544320\n'), 335_544_320, 'v2 and v1: bytes, newline-terminated');
  t.equal(parseMemoryLimit('max\n'), undefined, 'v2: "max" is no limit');
  t.equal(parseMemoryLimit('9223372036854771712\n'), undefined, "v1: the page-aligned 2^63 − 1 is no limit");
  t.equal(parseMemoryLimit('9007199254740991'), 9_007_199_254_740_991, 'the largest exact number is still a limit');
  t.equal(parseMemoryLimit('0'), undefined, 'zero is not a limit a process runs under');
  for (const junk of ['', '-1', '12k', '1e9', 'max 1']) t.equal(parseMemoryLimit(junk), undefined, `"${junk}" is not read as a limit`);
});

t.test('the files read for a /proc/self/cgroup: the own level up to the root', async (t) => {
  t.same(memoryLimitFiles('0::/\n', '/cg'), ['/cg/memory.max'], 'v2 in a cgroup namespace: the root is the container');
  t.same(memoryLimitFiles('0::/kubepods.slice/pod1/cri-abc\n', '/cg'), [
    '/cg/kubepods.slice/pod1/cri-abc/memory.max',
    '/cg/kubepods.slice/pod1/memory.max',
    '/cg/kubepods.slice/memory.max',
    '/cg/memory.max',
  ], 'v2 without a namespace: every level up');
  t.same(memoryLimitFiles('12:pids:/x\n4:memory:/docker/abc\n1:name=systemd:/x\n', '/cg'), [
    '/cg/memory/docker/abc/memory.limit_in_bytes',
    '/cg/memory/docker/memory.limit_in_bytes',
    '/cg/memory/memory.limit_in_bytes',
  ], 'v1: the memory hierarchy only');
  t.same(memoryLimitFiles('5:cpu,memory:/a\n', '/cg'), ['/cg/memory/a/memory.limit_in_bytes', '/cg/memory/memory.limit_in_bytes'], 'v1: memory mounted with another controller');
  t.same(memoryLimitFiles('4:memory:/p\n0::/\n', '/cg'), ['/cg/memory/p/memory.limit_in_bytes', '/cg/memory/memory.limit_in_bytes', '/cg/memory.max'], 'hybrid: both');
  t.same(memoryLimitFiles('garbage\n4:memory:relative\n\n', '/cg'), [], 'lines that name no cgroup path are ignored');
});

t.test('the lowest limit along the path, read from real files; unreadable and unlimited levels do not count', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'apigw-cgroup-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const write = (rel: string, text: string): void => {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  };
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  };
  write('memory.max', 'max\n');
  write('kubepods/memory.max', '8589934592\n');
  write('kubepods/pod1/cri-abc/memory.max', '335544320\n');
  t.equal(lowestLimit(memoryLimitFiles('0::/kubepods/pod1/cri-abc\n', root), read), 335_544_320, "the container's own limit, below its parents'");
  write('kubepods/pod1/memory.max', '268435456\n');
  t.equal(lowestLimit(memoryLimitFiles('0::/kubepods/pod1/cri-abc\n', root), read), 268_435_456, "a parent's lower limit binds");
  t.equal(lowestLimit(memoryLimitFiles('0::/\n', root), read), undefined, 'unlimited at the only level: no limit');
  t.equal(lowestLimit(memoryLimitFiles('0::/elsewhere\n', root), read), undefined, 'no file readable with a limit: none');
});

t.test('syncer_memory_limit_bytes: the limit when there is one, absent when unlimited', async (t) => {
  const limited = new Telemetry({ defaultMetrics: false });
  limited.memoryLimit(335_544_320);
  t.match(await limited.metrics(), /^syncer_memory_limit_bytes 335544320$/m);
  const unlimited = new Telemetry({ defaultMetrics: false });
  unlimited.memoryLimit(undefined);
  t.notMatch(await unlimited.metrics(), /syncer_memory_limit_bytes/);
});
