// Errors nobody expected at the entry points that are not requests: timer callbacks, handlers of
// server, stream and library events, and promises nobody awaits (background loops). Each such
// entry point catches what it throws and reports it here instead of letting it reach the
// process; the component then goes on with its last good state. app.ts logs every report and
// counts it (syncer_unexpected_errors_total{source}); what still escapes every guard is main.ts's
// business (it drains and exits). Reports travel on a diagnostics channel, as undici publishes
// its events: the layers that guard import nothing of telemetry. The channel is process-wide,
// like the errors it carries. With nobody subscribed (a unit test of one component), a report is
// thrown again on the next tick, so that nothing caught is ever lost silently.
import { channel } from 'node:diagnostics_channel';

/** timer: a timer's callback; event: an event or callback handler; promise: a background task nobody awaits. */
export type UnexpectedSource = 'timer' | 'event' | 'promise';
export const UNEXPECTED_SOURCES: readonly UnexpectedSource[] = ['timer', 'event', 'promise'];

export interface UnexpectedError {
  readonly source: UnexpectedSource;
  /** The entry point, in words: "probe timeout sweep", "the check listener". */
  readonly where: string;
  readonly err: unknown;
}

const reports = channel('apigw-syncer:unexpected-error');

/** Reports what an entry point caught. Never throws at its caller. */
export function reportUnexpected(source: UnexpectedSource, where: string, err: unknown): void {
  if (!reports.hasSubscribers) {
    process.nextTick(() => {
      throw err;
    });
    return;
  }
  const report: UnexpectedError = { source, where, err };
  reports.publish(report);
}

/** Subscribes to every report; returns the unsubscribe function. */
export function onUnexpected(listener: (report: UnexpectedError) => void): () => void {
  const subscriber = (message: unknown): void => listener(message as UnexpectedError);
  reports.subscribe(subscriber);
  return () => void reports.unsubscribe(subscriber);
}

/** `fn`, with what it throws reported instead of thrown: for a timer callback or an event listener. */
export function guarded<A extends unknown[]>(source: UnexpectedSource, where: string, fn: (...args: A) => void): (...args: A) => void {
  return (...args: A): void => {
    try {
      fn(...args);
    } catch (err) {
      reportUnexpected(source, where, err);
    }
  };
}
