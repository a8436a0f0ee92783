/** Loopback ports for tests that must name a port before anything listens on it. */
import { createServer, type AddressInfo } from 'node:net';

/** A loopback port that was free a moment ago (and is closed now: connecting to it is refused). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
