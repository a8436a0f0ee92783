/** Request measures for the loggers' entries (src/core/http/measures.ts). */
import { measureRequests } from '../../core/plugin/index.js';

let measuring = false;

/**
 * From a logger's compile(): request sizes and start times (request.size,
 * response.size, latency) are measured from the first logger conf on, not
 * from start-up, so a gateway that lists the loggers (the default) but uses
 * none pays nothing per request. Stays on for the life of the process.
 */
export function measureForLogs(): void {
  if (measuring) return;
  measuring = true;
  measureRequests();
}
