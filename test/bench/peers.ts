// Bench helper process: N replicas that hold every token (answer 200), on their own CPU budget.
import { startReplicas } from '../support/replica-server.js';

const [net = '127.0.8.', first = '11', count = '9', port = '18095'] = process.argv.slice(2);
const replicas = await startReplicas(Number(count), { net, first: Number(first), port: Number(port) });
for (const r of replicas) r.behaviour = { kind: 'status', status: 200 };
process.stdout.write('ready\n');
process.on('SIGTERM', () => void Promise.all(replicas.map((r) => r.close())).then(() => process.exit(0)));
