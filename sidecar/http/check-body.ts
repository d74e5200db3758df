// The JSON body of a check answer, the one response nginx waits for on every token. Built by
// hand for its one fixed shape: a third of JSON.stringify's cost on the hot path. Strings that
// come from outside (peer names, error codes) still go through JSON.stringify, so escaping is
// JSON.stringify's; the test holds the output equal to JSON.stringify of the same fields in the
// same order. (A schema compiler such as fast-json-stringify would do the same work, at the
// price of ajv and its dependencies in every sidecar's memory.)
import type { PeerReport, Verdict } from '../model.js';

export function checkBody(checkId: string, verdict: Verdict, durationMs: number, shared: boolean, cached: boolean, peers: readonly PeerReport[]): string {
  let body = `{"checkId":"${checkId}","verdict":"${verdict}","durationMs":${durationMs},"shared":${shared},"cached":${cached},"peers":[`;
  for (let i = 0; i < peers.length; i++) {
    const p = peers[i]!;
    body += `${i === 0 ? '' : ','}{"name":${JSON.stringify(p.name)},"outcome":"${p.outcome}","attempts":${p.attempts},"lastStatus":${p.lastStatus},"lastError":${JSON.stringify(p.lastError)}}`;
  }
  return `${body}]}`;
}
