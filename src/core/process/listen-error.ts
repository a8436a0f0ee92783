/**
 * A listener that could not bind, told as an operator reads it: which config
 * key asked for which address, and why the kernel said no, in one line (no
 * stack: the cause is the machine's, not a bug). Crosses the worker IPC as its
 * plain fields, so a worker's failure reads the same as the primary's.
 */

export interface ListenFailure {
  /** The config key that names the address, e.g. `apisix.node_listen`. */
  readonly key: string;
  readonly host: string;
  readonly port: number;
  /** The errno code (EADDRINUSE, EACCES, EADDRNOTAVAIL, ...), when there is one. */
  readonly code?: string;
  readonly reason: string;
}

const REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use (another process listens there)',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'no such address on this machine',
  EAFNOSUPPORT: 'address family not supported',
  ENOTFOUND: 'host name not found',
};

export class ListenError extends Error {
  readonly failure: ListenFailure;
  constructor(failure: ListenFailure, options?: { cause?: unknown }) {
    const host = failure.host.includes(':') ? `[${failure.host}]` : failure.host;
    super(`cannot listen on ${host}:${failure.port} (${failure.key}): ${failure.reason}`, options);
    this.name = 'ListenError';
    this.failure = failure;
  }

  static of(key: string, host: string, port: number, err: unknown): ListenError {
    if (err instanceof ListenError) return err;
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const reason = (code !== undefined ? REASONS[code] : undefined) ?? (err instanceof Error ? err.message : String(err));
    return new ListenError({ key, host, port, code, reason }, { cause: err });
  }
}

/** Runs `listen`, turning its failure into a ListenError naming `key` and the address. */
export async function listenAs<T>(key: string, host: string, port: number, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (err) {
    throw ListenError.of(key, host, port, err);
  }
}
