/**
 * Hands a request to a scheme handler (APISIX's `scheme: kafka` branch of the
 * access phase): the handler decides whether to accept the WebSocket or answer
 * over HTTP, and the log phase runs when its session ends.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { encodeBody, ERRORS, sendError } from '../errors.js';
import type { RequestCtx } from '../http/request-context.js';
import type { SchemeHandler, SchemeRequest } from '../pubsub/scheme-handler.js';
import type { SessionFollowers } from '../pubsub/follow.js';
import type { CompiledUpstream } from '../snapshot/types.js';
import type { Responder } from './respond.js';

export interface TakeoverEnv {
  readonly logger: Logger;
  readonly responder: Responder;
  /** From config `apisix.pubsub`: frame size limit (bytes) and idle timeout (ms, 0 = none). */
  readonly pubsub: SchemeRequest['pubsub'];
  /** Sockets no longer tracked by the HTTP server, destroyed when the data plane closes. */
  readonly upgraded: Set<unknown>;
  /** The open sessions that follow their route across config changes. */
  readonly followers: SessionFollowers;
  /** Runs the log phase once. */
  end(ctx: RequestCtx): void;
}

/** `upstream` is the compiled upstream the flow resolved for the request. */
export function takeOver(ctx: RequestCtx, handler: SchemeHandler, env: TakeoverEnv, upstream: CompiledUpstream): void {
  ctx.takenOver = true;
  const upgrade = ctx.upgrade;
  const req = ctx.req;
  const isUpgrade =
    upgrade?.handshake !== undefined &&
    req.method === 'GET' &&
    req.httpVersion === '1.1' &&
    String(req.headers.upgrade ?? '').toLowerCase() === 'websocket';
  let accepted = false;
  const request: SchemeRequest = {
    ctx,
    isUpgrade,
    pubsub: env.pubsub,
    accept: (options) => {
      if (!isUpgrade || accepted) return Promise.reject(new Error('accept() needs an unanswered WebSocket upgrade request'));
      accepted = true;
      const socket = upgrade!.socket;
      ctx.res.detachSocket(socket as Socket);
      env.upgraded.add(socket);
      socket.once('close', () => env.upgraded.delete(socket));
      return upgrade!.handshake!(options?.maxPayload);
    },
    reject: (status, body) => {
      if (accepted) return;
      env.responder.body(ctx, status, encodeBody(body), undefined);
    },
    follow: (session) => {
      const choice = ctx.upstreamChoice;
      const consumerName = ctx.consumer?.username;
      return env.followers.add(
        {
          route: ctx.compiled!,
          upstream,
          chosenUpstreamId: typeof choice === 'string' ? choice : undefined,
          pluginBuiltUpstream: choice !== undefined && typeof choice !== 'string',
          globalChain: ctx.snapshot.globalChain,
          consumerName,
          consumer: consumerName === undefined ? undefined : ctx.snapshot.consumers.get(consumerName),
        },
        session,
      );
    },
  };
  let session: Promise<void>;
  try {
    session = handler(request);
  } catch (err) {
    session = Promise.reject(err);
  }
  session.then(
    () => env.end(ctx),
    (err: unknown) => {
      env.logger.error({ err, route: ctx.route.id }, 'scheme handler failed');
      if (!accepted && !ctx.res.headersSent) sendError(ctx.res, ERRORS.internal, { server: env.responder.serverHeader });
      else if (upgrade) upgrade.socket.destroy();
      env.end(ctx);
    },
  );
}
