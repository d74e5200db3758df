// Plants one fault in the BUILT sidecar, loaded into it with `node --import` by
// sidecar-faults.test.ts only: nothing in the program loads this file, and the image carries no
// dist/test. PLANT_FAULT names the fault:
//  - probe-timeout: every probe's timeout throws (a bug in a timer's callback: the timeout sweep;
//    it patches the probe module, so it runs against tsc's output, not the bundle);
//  - accept-error: on SIGUSR2, both listeners emit the 'error' Node emits when accept() fails
//    (ENOBUFS; libuv absorbs EMFILE, but not this);
//  - escape: on SIGUSR2, a timer that nothing guards throws;
//  - escape-rejection: on SIGUSR2, a promise nobody handles rejects.
import { Server } from 'node:net';
import { Probe } from '../../sidecar/probe/probe.js';

const fault = process.env['PLANT_FAULT'];
const listening: Server[] = [];

switch (fault) {
  case 'probe-timeout':
    Probe.prototype.timedOut = function timedOut(): void {
      throw new Error('planted: a probe timeout that throws');
    };
    break;
  case 'accept-error': {
    const listen = Server.prototype.listen;
    Server.prototype.listen = function (this: Server, ...args: unknown[]): Server {
      listening.push(this);
      return (listen as (...a: unknown[]) => Server).apply(this, args);
    };
    process.on('SIGUSR2', () => {
      for (const server of listening) server.emit('error', Object.assign(new Error('accept ENOBUFS'), { code: 'ENOBUFS', errno: -105, syscall: 'accept' }));
    });
    break;
  }
  case 'escape':
    process.on('SIGUSR2', () =>
      setImmediate(() => {
        throw new Error('planted: an error no guard covers');
      }),
    );
    break;
  case 'escape-rejection':
    process.on('SIGUSR2', () => void Promise.reject(new Error('planted: a rejection nobody handles')));
    break;
  default:
    throw new Error(`PLANT_FAULT must name a fault, got ${String(fault)}`);
}
