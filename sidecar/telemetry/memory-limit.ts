// The container's memory limit, read once at start from the cgroup (v2 memory.max, v1
// memory.limit_in_bytes), so a dashboard plots resident memory against it without
// kube-state-metrics. The limit that binds is the lowest along the process's cgroup path (a
// parent's limit holds for its children; without a cgroup namespace the container's own level
// is deeper than the mount's root), so every level readable from here is read. No limit at
// any level → undefined.
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';

const CGROUP_ROOT = '/sys/fs/cgroup';

/**
 * A memory.max or memory.limit_in_bytes file's content → bytes, or undefined for "no limit":
 * v2 writes "max"; v1 the largest page-aligned signed 64-bit number (9223372036854771712). No
 * real limit comes near 2^53 bytes (8 PiB), so anything above is "no limit" too.
 */
export function parseMemoryLimit(text: string): number | undefined {
  const value = text.trim();
  if (!/^[0-9]+$/.test(value)) return undefined;
  const bytes = Number(value);
  return bytes > 0 && bytes <= Number.MAX_SAFE_INTEGER ? bytes : undefined;
}

/**
 * /proc/self/cgroup → the limit files to read, from the process's own cgroup up to the root:
 * "0::<path>" is the v2 hierarchy (memory.max), a v1 line whose controllers include memory
 * names the memory hierarchy (memory.limit_in_bytes, mounted at <root>/memory).
 */
export function memoryLimitFiles(procSelfCgroup: string, root = CGROUP_ROOT): string[] {
  const files: string[] = [];
  for (const line of procSelfCgroup.split('\n')) {
    const m = /^([0-9]+):([^:]*):(\/.*)$/.exec(line.trim());
    if (m === null) continue;
    const controllers = m[2]!;
    const v2 = m[1] === '0' && controllers === '';
    if (!v2 && !controllers.split(',').includes('memory')) continue;
    const [dir, file] = v2 ? [root, 'memory.max'] : [posix.join(root, 'memory'), 'memory.limit_in_bytes'];
    for (let level = posix.normalize(m[3]!); ; level = posix.dirname(level)) {
      files.push(posix.join(dir, level, file));
      if (level === '/') break;
    }
  }
  return files;
}

/** The lowest limit among `files` that `read` can read; undefined when none sets one. */
export function lowestLimit(files: readonly string[], read: (path: string) => string | undefined): number | undefined {
  let lowest: number | undefined;
  for (const file of files) {
    const text = read(file);
    const limit = text === undefined ? undefined : parseMemoryLimit(text);
    if (limit !== undefined && (lowest === undefined || limit < lowest)) lowest = limit;
  }
  return lowest;
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** This process's memory limit in bytes, or undefined when unlimited (or not on Linux). */
export function readMemoryLimit(): number | undefined {
  const cgroups = readOptional('/proc/self/cgroup');
  return cgroups === undefined ? undefined : lowestLimit(memoryLimitFiles(cgroups), readOptional);
}
