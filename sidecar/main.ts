#!/usr/bin/env node
// Entry point: `apigw-syncer` runs the sidecar; `apigw-syncer peers` prints discovered peers and exits.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { App } from './app.js';
import { parseConfig, type Config } from './config.js';
import { runPeersCommand } from './peers-command.js';
import { createLogger, type Logger } from './telemetry/logger.js';

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
/** Exit status after an error that escaped every guard (sysexits' EX_SOFTWARE): not a signal's 0, not a configuration's 2. */
const EXIT_UNEXPECTED = 70;
/** How long the drain after such an error may take beyond the check deadline before the process exits anyway. */
const DRAIN_GRACE_MS = 3_000;

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function loadConfig(): Config {
  const parsed = parseConfig(process.env, { hostname: hostname(), serviceAccountNamespace: readOptional(SERVICE_ACCOUNT_NAMESPACE) });
  if (parsed.ok) return parsed.config;
  for (const error of parsed.errors) process.stderr.write(`apigw-syncer: configuration error: ${error}\n`);
  process.stderr.write(`apigw-syncer: ${parsed.errors.length} configuration error(s); see the README's configuration table\n`);
  process.exit(2);
}

/**
 * An error that reaches the process escaped every guard (unexpected.ts): nothing says what it left
 * broken, and a sidecar that keeps answering in an unknown state could answer Synced wrongly. As
 * Node would, the process ends, but as after SIGTERM: readiness goes 503 and the checks in flight
 * get their answers first (bounded by the deadline plus DRAIN_GRACE_MS). The exit status (70)
 * tells a restart for this from the others. Only these errors end it: every known entry point is
 * guarded, so a crash loop means a new bug, loud in the restart count, not a wedged sidecar.
 */
function exitOnEscapedErrors(app: App, log: Logger, config: Config): void {
  let escaped = 0;
  process.on('uncaughtException', (err, origin) => {
    log.fatal({ err, origin }, `an error escaped every guard: draining, then exiting with status ${EXIT_UNEXPECTED} so that the container restarts clean`);
    if (++escaped > 1) process.exit(EXIT_UNEXPECTED);
    process.exitCode = EXIT_UNEXPECTED;
    setTimeout(() => process.exit(EXIT_UNEXPECTED), config.hardTimeoutMs + DRAIN_GRACE_MS).unref();
    const exit = (): never => process.exit(EXIT_UNEXPECTED);
    app.stop().then(exit, exit);
  });
}

async function runSidecar(config: Config): Promise<void> {
  const log = createLogger(config);
  const app = new App({ config, log });
  exitOnEscapedErrors(app, log, config);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      log.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    log.info({ signal }, 'signal received');
    app.stop().then(
      // 0, unless an escaped error set its own status meanwhile.
      () => process.exit(),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await app.start();
  } catch (err) {
    log.fatal({ err }, 'could not start');
    process.exit(1);
  }
}

const config = loadConfig();
if (process.argv[2] === 'peers') {
  // Exit now rather than when the event loop empties: a kubeconfig credential plugin that hung
  // is a child of this process and would keep it running past the command's deadline. (On
  // Linux, writes to stdout are synchronous: nothing printed is lost.)
  process.exit(await runPeersCommand(config, process.stdout));
} else if (process.argv[2] === undefined) {
  await runSidecar(config);
} else {
  process.stderr.write(`usage: apigw-syncer [peers]\n`);
  process.exit(2);
}
