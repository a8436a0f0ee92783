/**
 * APISIX's status API (apisix.status, default 127.0.0.1:7085), served by the
 * primary process: `GET /status` answers while the process runs;
 * `GET /status/ready` answers 200 only once every data-plane process has
 * loaded the config and accepts connections, else 503 naming what is not
 * ready (APISIX 3.13's shapes), so it can be a readiness probe. It listens
 * before the data plane starts, so a probe sees "not ready" rather than a
 * refused connection while workers come up.
 */
import { fastify, type FastifyInstance } from 'fastify';

export interface StatusOptions {
  /** Undefined when ready; else what is not (APISIX's `error` text). */
  notReady(): string | undefined;
}

export function createStatusServer(opts: StatusOptions): FastifyInstance {
  const app = fastify({ logger: false, exposeHeadRoutes: false });
  app.get('/status', async () => ({ status: 'ok' }));
  app.get('/status/ready', async (_req, reply) => {
    const error = opts.notReady();
    if (error === undefined) return { status: 'ok' };
    return reply.code(503).send({ status: 'error', error });
  });
  return app;
}
