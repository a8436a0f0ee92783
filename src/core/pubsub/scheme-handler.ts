/**
 * Upstream schemes that are not proxied but handed to a handler in the access
 * phase (APISIX's `scheme: kafka` takeover). A messaging backend registers
 * itself here; the data plane looks the scheme up after rewrite/access and
 * global rules ran and before any balancer is chosen.
 */
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import type { RequestContext } from '../plugin/ctx.js';
import type { FollowingSession } from './follow.js';

export interface SchemeRequest {
  /** The plugins' context, plus the raw request the WebSocket handshake is checked on (plugins never see it). */
  readonly ctx: RequestContext & { readonly req: IncomingMessage };
  /** The client asked for a WebSocket upgrade (Upgrade: websocket, Connection: upgrade, GET, HTTP/1.1). */
  readonly isUpgrade: boolean;
  /**
   * Completes the handshake (101) and hands over the socket, paused: attach
   * listeners, then `ws.resume()`, so a frame sent along with the handshake is
   * not lost. Call only when `isUpgrade`, at most once.
   */
  accept(options?: { maxPayload?: number }): Promise<WebSocket>;
  /** Answers a request that was not upgraded: `status` with a JSON body followed by "\n". */
  reject(status: number, body: unknown): void;
  /** From config `apisix.pubsub`: frame size limit (bytes) and idle timeout (ms, 0 = none). */
  readonly pubsub: { readonly maxFrameSize: number; readonly idleTimeoutMs: number };
  /**
   * Follows the route across config changes once the socket is accepted
   * (core/pubsub/follow.ts): the session is told of a changed upstream or
   * closed. Returns the function that stops following, for when the session ends.
   */
  follow(session: FollowingSession): () => void;
}

/** Resolves when the session is over; the log phase runs after it. */
export type SchemeHandler = (request: SchemeRequest) => Promise<void>;

/** What a backend may add to its handler: warm-up when a config first names the scheme, and shutdown. */
export interface SchemeHooks {
  /**
   * Starts loading what the handler needs (a client library, say): runs when a
   * config first has an upstream with this scheme, so a gateway without one
   * never loads it and the first request need not wait.
   */
  prepare?: () => void;
  /** Closes what the backend holds open (shared broker connections) when the data plane closes. */
  close?: () => Promise<void>;
}

const handlers = new Map<string, SchemeHandler>();
const hooks = new Map<string, SchemeHooks>();

export function registerSchemeHandler(scheme: string, handler: SchemeHandler, schemeHooks: SchemeHooks = {}): void {
  handlers.set(scheme, handler);
  hooks.set(scheme, schemeHooks);
}

export function getSchemeHandler(scheme: string | undefined): SchemeHandler | undefined {
  return scheme === undefined ? undefined : handlers.get(scheme);
}

/** Called when an upstream with this scheme is compiled. */
export function prepareSchemeHandler(scheme: string | undefined): void {
  if (scheme !== undefined) hooks.get(scheme)?.prepare?.();
}

/** Closes every registered backend's shared state; a failing one does not stop the others. */
export async function closeSchemeHandlers(): Promise<void> {
  await Promise.allSettled([...hooks.values()].map((h) => h.close?.()));
}
