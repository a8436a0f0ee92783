/**
 * The Kafka backend's error catalogue: whatever the Kafka client throws
 * becomes one KafkaBackendError carrying the short word lua-resty-kafka puts
 * after `err: ` (which apisix/pubsub/kafka.lua passes on in its ErrorResp), so
 * pub/sub clients written against APISIX see the same strings. Nothing here
 * may echo broker config: SASL passwords must never reach an ErrorResp or a
 * log line.
 */

/** An error whose message is already the APISIX word (`not found topic`, `OFFSET_OUT_OF_RANGE`). */
export class KafkaBackendError extends Error {
  override readonly name = 'KafkaBackendError';
  /** Worth a metadata refresh and one more try (leader moved, broker gone). */
  readonly stale: boolean;
  /** The broker could not be talked to at all (refused, timed out, TLS failed). */
  readonly unreachable: boolean;
  /** The underlying reason, for the log only (APISIX logs e.g. `self-signed certificate`). */
  readonly detail?: string;
  constructor(message: string, opts: { stale?: boolean; unreachable?: boolean; detail?: string } = {}) {
    super(message);
    this.stale = opts.stale ?? false;
    this.unreachable = opts.unreachable ?? false;
    this.detail = opts.detail;
  }
}

export const NOT_FOUND_TOPIC = 'not found topic';
export const NOT_FOUND_PARTITION = 'not found partition';
export const NOT_FOUND_BROKER = 'not found broker';

/**
 * kafkajs still uses a few pre-KIP names; Kafka (and lua-resty-kafka 0.23,
 * which APISIX pins) use the current ones.
 */
const RENAMED: Record<number, string> = {
  [-1]: 'UNKNOWN_SERVER_ERROR',
  6: 'NOT_LEADER_OR_FOLLOWER',
  14: 'COORDINATOR_LOAD_IN_PROGRESS',
  15: 'COORDINATOR_NOT_AVAILABLE',
  16: 'NOT_COORDINATOR',
};

/** Protocol errors after which the cached metadata is probably wrong. */
const STALE_TYPES = new Set([
  'UNKNOWN_TOPIC_OR_PARTITION',
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
  'BROKER_NOT_AVAILABLE',
  'REPLICA_NOT_AVAILABLE',
  'FENCED_LEADER_EPOCH',
  'UNKNOWN_LEADER_EPOCH',
]);

/** Connection-level kafkajs errors: the broker (or all of them) could not be talked to. */
const UNREACHABLE_NAMES = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSNumberOfRetriesExceeded',
  'KafkaJSLockTimeout',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
]);

interface ErrorLike {
  name?: unknown;
  type?: unknown;
  code?: unknown;
  message?: unknown;
  cause?: unknown;
  originalError?: unknown;
}

/** Follows kafkajs's wrappers (retries exceeded, non-retriable) down to the error that says what happened. */
function innermost(err: ErrorLike): ErrorLike {
  let e = err;
  for (let i = 0; i < 5; i++) {
    const next = (e.cause ?? e.originalError) as ErrorLike | undefined;
    if (!next || typeof next !== 'object' || next === e) break;
    e = next;
  }
  return e;
}

/**
 * @param saslMechanism named in SASL failures so the operator sees which
 *   mechanism the broker refused (never the credentials).
 */
export function toKafkaBackendError(err: unknown, saslMechanism?: string): KafkaBackendError {
  const e = classify(err);
  // kafkajs spells mechanisms its own way (`SASL SCRAM SHA256 ...`); use the configured name.
  const m = saslMechanism ? /^SASL\b.*?authentication failed:?\s*(.*)$/s.exec(e.message) : null;
  if (m) return new KafkaBackendError(`SASL ${saslMechanism} authentication failed: ${m[1]}`, { detail: e.detail });
  return e;
}

function classify(err: unknown): KafkaBackendError {
  if (err instanceof KafkaBackendError) return err;
  if (!err || typeof err !== 'object') return new KafkaBackendError('UNKNOWN_SERVER_ERROR');
  const e = innermost(err as ErrorLike);
  const outer = err as ErrorLike;

  const outerName = typeof outer.name === 'string' ? outer.name : '';
  if (outerName === 'KafkaJSSASLAuthenticationError') {
    // kafkajs words these as `SASL <MECH> authentication failed: <broker's reason>`: no credentials.
    const msg = stripSecrets(String(outer.message ?? ''));
    return new KafkaBackendError(msg.startsWith('SASL ') ? msg : `SASL authentication failed: ${msg}`);
  }
  // A Kafka protocol error code from the broker.
  if (typeof e.type === 'string' && e.type !== '' && e.name !== 'KafkaJSConnectionError') {
    if (e.type.includes('SASL')) return new KafkaBackendError(`SASL authentication failed: ${e.type}`);
    const word = typeof e.code === 'number' && RENAMED[e.code] ? RENAMED[e.code]! : e.type;
    if (word === 'UNKNOWN_TOPIC_OR_PARTITION') return new KafkaBackendError(NOT_FOUND_TOPIC, { stale: true });
    return new KafkaBackendError(word, { stale: STALE_TYPES.has(e.type) });
  }

  const name = typeof e.name === 'string' ? e.name : '';
  const apiName = (e as { apiName?: unknown }).apiName;
  if (name === 'KafkaJSServerDoesNotSupportApiKey' && typeof apiName === 'string' && apiName.startsWith('Sasl')) {
    // The broker's ApiVersions answer lists no SASL handshake: it has no SASL listener here.
    return new KafkaBackendError(`SASL authentication failed: the broker does not support SASL (${apiName} not offered)`);
  }
  if (name === 'KafkaJSSASLAuthenticationError') {
    const msg = stripSecrets(String(e.message ?? ''));
    return new KafkaBackendError(msg.startsWith('SASL ') ? msg : `SASL authentication failed: ${msg}`);
  }
  const code = typeof e.code === 'string' ? e.code : '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/.test(code)) {
    // Same word as APISIX gives the client; the TLS reason goes to the log.
    return new KafkaBackendError(NOT_FOUND_TOPIC, { unreachable: true, detail: stripSecrets(String(e.message ?? code)) });
  }
  if (UNREACHABLE_NAMES.has(name) || UNREACHABLE_NAMES.has(String(outer.name ?? '')) || code.startsWith('E')) {
    // lua-resty-kafka reports "not found topic" when no bootstrap broker answered the metadata request.
    return new KafkaBackendError(NOT_FOUND_TOPIC, { stale: true, unreachable: true, detail: stripSecrets(String(e.message ?? name)) });
  }
  return new KafkaBackendError('UNKNOWN_SERVER_ERROR', { detail: stripSecrets(String(e.message ?? name)) });
}

let secretsToStrip: string[] = [];

/** Registers secrets (SASL passwords) that must be cut from any error text passed on to clients. */
export function registerSecret(secret: string): void {
  if (secret.length >= 1 && !secretsToStrip.includes(secret)) secretsToStrip = [...secretsToStrip, secret];
}

export function forgetSecret(secret: string): void {
  secretsToStrip = secretsToStrip.filter((s) => s !== secret);
}

function stripSecrets(text: string): string {
  let out = text;
  for (const s of secretsToStrip) out = out.split(s).join('***');
  return out;
}

/**
 * What a pub/sub client is told after APISIX's word when no broker could be
 * talked to: `not found topic` alone sent operators to the wrong place (the
 * topic) when the cause was a broker name that does not resolve or a refused
 * connection. Only the cause's code goes to the client (`ECONNREFUSED`,
 * `ENOTFOUND`, a certificate's reason, `timeout`); broker addresses stay in the
 * log, since the client may be outside the network they describe.
 */
export function unreachableCause(e: KafkaBackendError): string | undefined {
  if (!e.unreachable) return undefined;
  const detail = e.detail ?? '';
  const code = detail.match(/\b(E[A-Z]{3,}|ERR_[A-Z0-9_]+)\b/)?.[1];
  if (code !== undefined) return `brokers unreachable: ${code}`;
  if (/certificate/i.test(detail)) return `brokers unreachable: TLS: ${detail.slice(detail.search(/[^:]*certificate/i)).trim()}`;
  if (/within \d+ ms|timed? ?out/i.test(detail)) return 'brokers unreachable: timeout';
  return 'brokers unreachable';
}
