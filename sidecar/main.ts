#!/usr/bin/env node
// Entry point: `apigw-syncer` runs the sidecar; `apigw-syncer peers` prints discovered peers and exits.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { App } from './app.js';
import { parseConfig, type Config } from './config.js';
import { runPeersCommand } from './peers-command.js';
import { createLogger } from './telemetry/logger.js';

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

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

async function runSidecar(config: Config): Promise<void> {
  const log = createLogger(config);
  const app = new App({ config, log });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      log.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    log.info({ signal }, 'signal received');
    app.stop().then(
      () => process.exit(0),
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
  process.exitCode = await runPeersCommand(config, process.stdout);
} else if (process.argv[2] === undefined) {
  await runSidecar(config);
} else {
  process.stderr.write(`usage: apigw-syncer [peers]\n`);
  process.exit(2);
}
