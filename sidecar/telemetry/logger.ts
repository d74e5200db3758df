// pino JSON logs on stdout, with the pod and namespace on every line so one pod's stream reads alone.
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from '../config.js';

export type { Logger };

export function createLogger(config: Config, destination?: DestinationStream): Logger {
  const options = {
    level: config.logLevel,
    base: { pod: config.pod.name, namespace: config.pod.namespace },
    // Tokens never reach a log call; redaction is the second line of defence for header-shaped fields.
    redact: { paths: ['token', '*.token', 'headers.authorization', 'headers["x-auth-token"]'], censor: '[redacted]' },
  };
  // Asynchronous stdout: a slow log reader must not stall checks on the event loop. pino flushes
  // it synchronously on process exit, so fatal lines before process.exit are not lost.
  return pino(options, destination ?? pino.destination({ dest: 1, sync: false }));
}
