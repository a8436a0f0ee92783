/**
 * One deadline for everything a caller asks of the store on behalf of one
 * request: an Admin API call makes several store calls (reads, checks, the
 * write), and each one's own timeout added up let a PUT hang for 75 s behind a
 * 30 s `deployment.etcd.timeout`. A caller runs its work inside
 * withStoreDeadline; the etcd store gives each call what is left of it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

const deadlines = new AsyncLocalStorage<number>();

/** Runs `fn` with store calls bounded by `deadline` (ms since the epoch). */
export function withStoreDeadline<T>(deadline: number, fn: () => Promise<T>): Promise<T> {
  return deadlines.run(deadline, fn);
}

/** The ambient deadline, if the caller set one. */
export function storeDeadline(): number | undefined {
  return deadlines.getStore();
}
