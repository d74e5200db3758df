// The shared model every layer speaks: peers and peer sets (discovery produces them), probe
// results (probing produces them), peer outcomes and verdicts (checking produces them). Types
// only, plus the few facts about them that more than one layer needs; nothing here imports.

export interface Peer {
  /** Pod name (kubernetes), configured name (static) or address (dns). */
  readonly name: string;
  /** IP address or host name to probe. */
  readonly host: string;
  readonly port: number;
}

export interface PeerSet {
  /** Increases by one with every published change; 1 is the first set. */
  readonly version: number;
  readonly peers: readonly Peer[];
}

export interface PeerSetDiff {
  readonly added: readonly Peer[];
  readonly removed: readonly Peer[];
}

/** pending: no peer set yet; synced: the source is live; stale: the source fails, the last set serves. */
export type DiscoveryState = 'pending' | 'synced' | 'stale';

/**
 * One probe's result. synced: 200; missing: 401; error: transient (connect, timeout, 5xx,
 * broken response); unexpected: any other status, or a TLS verification failure — a
 * misconfiguration that retrying will not fix; departed: the peer left the peer set.
 */
export type ProbeResultKind = 'synced' | 'missing' | 'error' | 'unexpected' | 'departed';

/** A peer's outcome in a check. departed peers left the set during the check and are not counted. */
export type PeerOutcome = 'synced' | 'missing' | 'error' | 'timeout' | 'departed';

/** The verdict strings are a contract: nginx configurations match on them, spelling included. */
export type Verdict = 'Synced' | 'Partialy' | 'NotSynced' | 'Timeout';

export interface PeerReport {
  readonly name: string;
  readonly outcome: PeerOutcome;
  readonly attempts: number;
  /** The last HTTP status the peer sent, or null if none. */
  readonly lastStatus: number | null;
  /** Why the last attempt failed without a status (ECONNREFUSED, PROBE_TIMEOUT, …); null otherwise. */
  readonly lastError: string | null;
  /** ms from the check's start to this peer's first 200; null unless the outcome is synced. */
  readonly syncedAtMs: number | null;
}

export interface CheckResult {
  readonly verdict: Verdict;
  readonly durationMs: number;
  readonly peers: readonly PeerReport[];
}

/** Probes sent by one fan-out, by how each ended ('aborted': cut by the check's deadline). */
export type ProbeTally = Record<ProbeResultKind | 'aborted', number>;

/** A peer whose answer means misconfiguration (403, 404, TLS failure…), not replication lag. */
export interface Misconfigured {
  readonly peer: Peer;
  readonly status: number | null;
  readonly errorCode: string | null;
}

/** A fan-out's result: the check's, plus what it cost and what it found wrong. */
export interface FanOutResult extends CheckResult {
  readonly probes: ProbeTally;
  readonly misconfigured: readonly Misconfigured[];
  /** When its first 200 came (the fan-out's clock), null if none: what it knows is from then on. */
  readonly firstSyncedAt: number | null;
}

/** Why a check request got no verdict: answered 400, 503, or 500 for a bug; or abandoned by its client before the verdict. */
export type RejectReason = 'bad_token' | 'bad_origin' | 'bad_query' | 'not_ready' | 'shutting_down' | 'overloaded' | 'internal_error' | 'abandoned';

/** A check request answered with a verdict (what logs and metrics observe; never the token). */
export interface CheckAnswered {
  readonly checkId: string;
  readonly origin: string;
  /** tokenFingerprint(token), computed only when an observer asked for it. */
  readonly fingerprint: string | undefined;
  readonly status: number;
  readonly durationMs: number;
  /** Joined an identical check in flight. */
  readonly shared: boolean;
  /** Answered from the Synced memo, without probing. */
  readonly cached: boolean;
  readonly result: CheckResult;
}

/** A canary key on one peer: arrived (a 200), or why not (the fan-out's outcome for that peer). */
export type CanaryPeerResult = 'arrived' | 'missing' | 'error' | 'timeout';

/** synced: every peer got the key; incomplete: some did not; write_failed: the own replica did not take it. */
export type CanaryRunResult = 'synced' | 'incomplete' | 'write_failed';

export interface CanaryPeer {
  readonly name: string;
  readonly result: CanaryPeerResult;
  /** ms from the own replica's acknowledgement of the write to this peer's first 200; null unless arrived. */
  readonly delayMs: number | null;
}

/** One canary run: what it found (the key itself is never part of it). */
export interface CanaryReport {
  readonly result: CanaryRunResult;
  /** Unix time (ms) at which the run began and ended. */
  readonly startedAt: number;
  readonly endedAt: number;
  /** write_failed: why (an error code, or the status the token API answered); otherwise null. */
  readonly cause: string | null;
  /** Every peer probed and still in the set at the end (departed peers are left out); empty after write_failed. */
  readonly peers: readonly CanaryPeer[];
}

/** Stable identity of a peer's endpoint: one connection pool per key. */
export function peerKey(peer: Peer): string {
  return `${peer.name}@${peer.host}:${peer.port}`;
}

/**
 * The origin (scheme://host:port) a peer is probed at: IPv6 literals in brackets. Configuration
 * validates static peers with this same function, so it accepts only what probing can use.
 */
export function peerOrigin(scheme: 'http' | 'https', host: string, port: number): string {
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
