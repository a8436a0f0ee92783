/** @fastify/http-proxy forwarding everything to one upstream: the common Node gateway building block. */
import fastifyHttpProxy from '@fastify/http-proxy';
import Fastify from 'fastify';

const [upstream, portArg] = process.argv.slice(2);
if (!upstream) throw new Error('usage: fastify-proxy.js http://host:port [listenPort]');
const app = Fastify({ logger: false });
await app.register(fastifyHttpProxy, { upstream, http: undefined });
await app.listen({ host: '127.0.0.1', port: Number(portArg ?? 0) });
process.stdout.write(`listening ${(app.server.address() as import('node:net').AddressInfo).port}\n`);
