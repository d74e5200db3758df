// One probe of one peer — does it hold the token? — as the handler undici dispatches it with.
// A probe settles exactly once, with a classified result, and never throws at its caller.
//
// Why a dispatch handler instead of Pool.request: request() builds a promise, a Readable body
// stream and an abort-signal listener per call; a probe needs the status line and the end of a
// tiny body. The callbacks are undici 8's handler interface (onRequestStart, onResponseStart, …);
// a probe is cut on its socket through the controller undici hands to onRequestStart.
import type { Dispatcher } from 'undici';
import type { ProbeResultKind } from '../model.js';
import type { ProbeTimeouts, Timed } from './probe-timeouts.js';

export interface ProbeResult {
  readonly kind: ProbeResultKind | 'aborted';
  /** HTTP status, when the peer answered with one. */
  readonly status: number | null;
  /** Error code for failures without a status (ECONNREFUSED, PROBE_TIMEOUT, …); else null. */
  readonly errorCode: string | null;
}

/** Told of the result once, when the probe settles. */
export interface ProbeListener {
  probeSettled(probe: Probe, result: ProbeResult): void;
}

/** What the peer channel needs to hear back: undici is done with the probe (its slot is free). */
export interface ProbeOwner {
  released(probe: Probe): void;
}

export const PROBE_TIMEOUT = 'PROBE_TIMEOUT';
/** A probe answer's body is read up to this many bytes; past it, the status decides and the connection is dropped. */
export const MAX_PROBE_BODY_BYTES = 4 * 1024;

/** Why a probe was cut short from our side; reasons made once, since each error costs a stack trace. */
export const CUT = {
  deadline: new Error('check deadline'),
  timeout: new Error('probe timeout'),
  departed: new Error('peer left the peer set'),
  bodyLimit: new Error(`probe answer body over ${MAX_PROBE_BODY_BYTES} bytes`),
} as const;
export type CutReason = (typeof CUT)[keyof typeof CUT];

export function classifyStatus(status: number): ProbeResultKind {
  if (status === 200) return 'synced';
  if (status === 401) return 'missing';
  if (status >= 500) return 'error';
  return 'unexpected';
}

// A peer whose certificate cannot be verified, that speaks no TLS where TLS was asked for, or
// whose address undici refuses will not be fixed by retrying within a check: reported at once,
// like a 403.
const MISCONFIGURATION = /^(CERT_|UNABLE_TO_|ERR_TLS_CERT|ERR_SSL_|DEPTH_ZERO_SELF_SIGNED|SELF_SIGNED_CERT|HOSTNAME_MISMATCH|UND_ERR_INVALID_ARG)/;

export function classifyError(code: string): ProbeResultKind {
  return MISCONFIGURATION.test(code) ? 'unexpected' : 'error';
}

function errorCodeOf(err: Error): string {
  const code = (err as Error & { code?: unknown }).code;
  return typeof code === 'string' ? code : err.name;
}

export class Probe implements Timed, Dispatcher.DispatchHandler {
  /** When the shared timeout sweep cuts it (performance.now() based); set by the sweep. */
  expiresAt = 0;
  /** The timeout sweep's list holding it while it runs, and its neighbours there. */
  sweep: ProbeTimeouts | undefined = undefined;
  prevInSweep: Timed | undefined = undefined;
  nextInSweep: Timed | undefined = undefined;
  private settled = false;
  private released = false;
  private status: number | null = null;
  private bodyBytes = 0;
  /** undici's handle on the request once it is on a socket (onRequestStart) until it ends. */
  private controller: Dispatcher.DispatchController | undefined = undefined;

  constructor(
    /** [name, value] of the token header: built once per check, shared by its probes. */
    readonly headers: string[],
    private readonly listener: ProbeListener,
    private readonly owner: ProbeOwner,
  ) {}

  get isSettled(): boolean {
    return this.settled;
  }

  /**
   * Ends the probe from our side with `reason`: settles it at once (a deadline as aborted, a
   * timeout or a departure as their own results) and, when undici holds it on a socket, aborts it
   * there. (Plain ASCII: esbuild keeps this comment in the bundle, see runtime-image.test.ts.)
   */
  cut(reason: CutReason): void {
    if (this.settled) return;
    if (reason === CUT.deadline) this.settle('aborted', null);
    else if (reason === CUT.departed) this.settle('departed', null);
    else this.settle('error', PROBE_TIMEOUT);
    // On a socket: abort (undici then destroys that connection: the answer can no longer be read).
    // Waiting for a connection: onRequestStart below removes it before it is written.
    this.controller?.abort(reason);
  }

  timedOut(): void {
    this.cut(CUT.timeout);
  }

  /** Fails the probe before undici ever held it (a pool undici refused), as a transport error would. */
  fail(err: Error): void {
    this.onResponseError(undefined, err);
  }

  // ---- undici's handler interface -----------------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    // Settled while undici was still connecting: throwing here makes undici drop the request
    // before writing it and keep the socket (client-h1.js writeH1: an onRequestStart error goes
    // to errorRequest, hence onResponseError), where controller.abort() would destroy a good
    // keep-alive connection (test/probe.test.ts counts the connections).
    if (this.settled) throw CUT.deadline;
    this.controller = controller;
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bodyBytes += chunk.length;
    if (this.bodyBytes > MAX_PROBE_BODY_BYTES && this.status !== null) {
      // The status line decided it; an oversized (or endless) body is not read, its connection dropped.
      this.settle(classifyStatus(this.status), null);
      controller.abort(CUT.bodyLimit);
    }
  }

  onResponseEnd(): void {
    // Only a fully read answer counts: a connection closed mid-response ends in onResponseError instead.
    if (this.status !== null) this.settle(classifyStatus(this.status), null);
    this.release();
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    const code = errorCodeOf(err);
    this.settle(classifyError(code), code);
    this.release();
  }

  // ---------------------------------------------------------------------------------------------

  /** The one way a result is told: only the first call counts, whichever path it comes from. */
  private settle(kind: ProbeResult['kind'], errorCode: string | null): void {
    if (this.settled) return;
    this.settled = true;
    this.sweep?.remove(this);
    this.listener.probeSettled(this, { kind, status: this.status, errorCode });
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.controller = undefined;
    this.owner.released(this);
  }
}
