// What another process holds, for soak tests of the built sidecar: its resident memory and open
// descriptors from /proc, and its event loop's live resources by kind from the
// nodejs_active_resources gauge its /metrics exposes (prom-client's default metrics, read from
// process.getActiveResourcesInfo() inside it: what handles.ts counts for this process).
import { readFileSync, readdirSync } from 'node:fs';

/** VmRSS of process `pid`, in bytes. */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** How many descriptors process `pid` has open. */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** nodejs_active_resources by type (TCPServerWrap, TCPSocketWrap, Timeout, …) from a Prometheus text exposition. */
export function activeResources(metricsText: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of metricsText.matchAll(/^nodejs_active_resources\{type="([^"]+)"\} (\d+)$/gm)) out.set(m[1]!, Number(m[2]));
  return out;
}
