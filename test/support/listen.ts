// In-process servers under test: listening on a loopback address and port the kernel picks,
// closed at the end of the test with every connection they still hold.
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Starts `server` on `host` (a 127.x address) and resolves with its base URL, http://host:port. */
export async function listenOnLoopback(server: Server, host = '127.0.0.1'): Promise<string> {
  server.listen(0, host);
  await once(server, 'listening');
  return `http://${host}:${(server.address() as AddressInfo).port}`;
}

/** Closes `server` and drops the connections it still holds (keep-alive, or requests it holds open). */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
