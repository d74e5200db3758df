// The bench's memory and start-up floor: a minimal ESM node:http server, started the way the
// sidecar is (same runtime, same command line), listening on BARE_ADDR (host:port) and
// answering every request with a 200.
import { createServer } from 'node:http';

const [host = '', port = ''] = (process.env['BARE_ADDR'] ?? '').split(':');
createServer((_req, res) => res.end('ok\n')).listen(Number(port), host);
