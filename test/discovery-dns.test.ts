// SYNCER_DISCOVERY=dns with an injected resolver and a manual clock: no network.
import t from 'tap';
import { createDnsSource, peersFromAddresses, type Resolver } from '../sidecar/discovery/dns-source.js';
import { captureLogger, configFrom, ManualClock, names, newStore } from './support/discovery-harness.js';

function setup(answers: (string[] | Error)[]) {
  const config = configFrom({ SYNCER_DISCOVERY: 'dns', SYNCER_DNS_NAME: 'gw-headless', SYNCER_DNS_INTERVAL_MS: '1000', POD_IP: '10.1.0.1', SYNCER_PROBE_PORT: '8081' });
  const { log, lines } = captureLogger();
  const { store, telemetry } = newStore(log);
  const clock = new ManualClock();
  const asked: string[] = [];
  const resolver: Resolver = async (name) => {
    asked.push(name);
    const next = answers.shift();
    if (next === undefined) throw new Error('no more answers scripted');
    if (next instanceof Error) throw next;
    return next;
  };
  const source = createDnsSource({ config, store, log }, { resolver, clock });
  return { source, store, telemetry, clock, asked, lines };
}

function dnsError(code: string): Error {
  return Object.assign(new Error(`queryA ${code} gw-headless`), { code });
}

t.test('publishes the addresses minus this pod, re-resolves every interval', async (t) => {
  const s = setup([['10.1.0.1', '10.1.0.2', '10.1.0.3'], ['10.1.0.1', '10.1.0.3', '10.1.0.4']]);
  s.source.start();
  await s.clock.advance(0);
  t.same(names(s.store.current()?.peers ?? []), ['10.1.0.2', '10.1.0.3'], 'own IP left out');
  t.same(s.store.current()?.peers[0], { name: '10.1.0.2', host: '10.1.0.2', port: 8081 });
  t.equal(s.store.discoveryState(), 'synced');
  await s.clock.advance(999);
  t.equal(s.asked.length, 1, 'not before the interval');
  await s.clock.advance(1);
  t.equal(s.asked.length, 2);
  t.same(names(s.store.current()?.peers ?? []), ['10.1.0.3', '10.1.0.4']);
  t.equal(s.store.current()?.version, 2);
  await s.source.stop();
});

t.test('a failure keeps the last set, marks it stale, counts it; recovery clears it', async (t) => {
  const s = setup([['10.1.0.2'], dnsError('ENOTFOUND'), dnsError('ETIMEOUT'), ['10.1.0.2', '10.1.0.5']]);
  s.source.start();
  await s.clock.advance(0);
  await s.clock.advance(1000);
  t.equal(s.store.discoveryState(), 'stale');
  t.same(names(s.store.current()?.peers ?? []), ['10.1.0.2'], 'last set kept, never emptied by an error');
  await s.clock.advance(1000);
  t.match(await s.telemetry.metrics(), /syncer_discovery_errors_total\{kind="resolve"\} 2/);
  const warns = s.lines.filter((l) => l.level === 40 && /resolving gw-headless failed/.test(l.msg));
  t.equal(warns.length, 1, 'one warning per outage, repeats at debug');
  t.match(warns[0], { hint: /publishNotReadyAddresses/ });
  await s.clock.advance(1000);
  t.equal(s.store.discoveryState(), 'synced');
  t.same(names(s.store.current()?.peers ?? []), ['10.1.0.2', '10.1.0.5']);
  await s.source.stop();
});

t.test('an initial failure leaves discovery pending (never publishes an empty set)', async (t) => {
  const s = setup([dnsError('ENOTFOUND')]);
  s.source.start();
  await s.clock.advance(0);
  t.equal(s.store.current(), undefined);
  t.equal(s.store.discoveryState(), 'pending');
  await s.source.stop();
});

t.test('stop() does not wait for a stuck lookup', async (t) => {
  const config = configFrom({ SYNCER_DISCOVERY: 'dns', SYNCER_DNS_NAME: 'x' });
  const { log } = captureLogger();
  const { store } = newStore(log);
  const source = createDnsSource({ config, store, log }, { resolver: () => new Promise(() => undefined) });
  source.start();
  await source.stop();
  t.pass('stopped');
});

t.test('duplicates collapse; own IP unset keeps every address', async (t) => {
  t.same(peersFromAddresses(['a', 'a', 'b'], undefined, 1).map((p) => p.name), ['a', 'b']);
  t.same(peersFromAddresses(['fd00::1', 'fd00::2'], 'fd00::2', 1).map((p) => p.host), ['fd00::1']);
});
