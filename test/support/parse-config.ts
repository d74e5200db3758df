// parseConfig as the config tests call it: a fixed pod context, and either the config (throwing
// with every error when refused) or the errors (none when accepted).
import { parseConfig, type Config, type ConfigContext, type Env } from '../../sidecar/config.js';

export const ctx: ConfigContext = { hostname: 'apigw-7d9f-abcde', serviceAccountNamespace: undefined };

export function ok(env: Env, context = ctx): Config {
  const r = parseConfig(env, context);
  if (!r.ok) throw new Error(r.errors.join('; '));
  return r.config;
}

export function errors(env: Env): readonly string[] {
  const r = parseConfig(env, ctx);
  return r.ok ? [] : r.errors;
}
