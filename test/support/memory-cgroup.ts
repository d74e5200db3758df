// A memory cgroup with a limit, to run a process as a container with resources.limits.memory
// runs: a child of this process's own memory cgroup (v1: memory.limit_in_bytes, v2:
// memory.max), which the process joins before it execs. Needs root, as the tests have.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execTracked, onExitCleanup } from './processes.js';

const ROOT = '/sys/fs/cgroup';

export interface MemoryCgroup {
  readonly dir: string;
  /** `argv` run inside the cgroup: a shell joins it, then execs argv (same pid). */
  wrap(argv: readonly string[]): string[];
  /** Removes the cgroup (once the processes in it have exited). */
  remove(): void;
}

interface Hierarchy {
  /** Where the memory hierarchy is mounted, and this process's cgroup in it. */
  readonly mount: string;
  readonly dir: string;
  readonly limitFile: string;
  /** mount(8) arguments that mount it there. */
  readonly mountArgs: readonly string[];
}

/** This process's memory cgroup, from /proc/self/cgroup. */
function ownMemoryCgroup(): Hierarchy {
  const lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  for (const line of lines) {
    const m = /^[0-9]+:([^:]*):(\/.*)$/.exec(line);
    if (m !== null && m[1]!.split(',').includes('memory')) {
      const mount = join(ROOT, 'memory');
      return { mount, dir: join(mount, m[2]!), limitFile: 'memory.limit_in_bytes', mountArgs: ['-t', 'cgroup', '-o', 'memory', 'memory', mount] };
    }
  }
  const unified = lines.map((l) => /^0::(\/.*)$/.exec(l)).find((m) => m !== null);
  if (unified) return { mount: ROOT, dir: join(ROOT, unified[1]!), limitFile: 'memory.max', mountArgs: ['-t', 'cgroup2', 'cgroup2', ROOT] };
  throw new Error('no memory cgroup in /proc/self/cgroup');
}

/**
 * Mounts the memory hierarchy where a container sees it when it is not there: `ip netns exec`
 * (how tests run side by side) mounts a fresh sysfs without the cgroup file systems, in a mount
 * namespace of its own, where these mounts stay.
 */
async function ensureMounted(h: Hierarchy): Promise<void> {
  if (existsSync(join(h.mount, 'cgroup.procs'))) return;
  if (h.mount !== ROOT) await execTracked('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'cgroup-root', ROOT]);
  mkdirSync(h.mount, { recursive: true });
  await execTracked('mount', h.mountArgs);
}

export async function createMemoryCgroup(name: string, limitBytes: number): Promise<MemoryCgroup> {
  const own = ownMemoryCgroup();
  await ensureMounted(own);
  const dir = join(own.dir, `${name}-${process.pid}`);
  mkdirSync(dir);
  const remove = (): void => {
    if (existsSync(dir)) rmdirSync(dir);
  };
  const unregister = onExitCleanup(() => {
    try {
      remove();
    } catch {
      /* a process still in it: the kernel keeps it until then */
    }
  });
  try {
    writeFileSync(join(dir, own.limitFile), String(limitBytes));
  } catch (err) {
    remove();
    unregister();
    throw new Error(`cannot limit memory in ${dir} (${own.limitFile}): ${err instanceof Error ? err.message : String(err)}`);
  }
  return {
    dir,
    wrap: (argv) => ['/bin/sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, ...argv],
    remove: () => {
      remove();
      unregister();
    },
  };
}
