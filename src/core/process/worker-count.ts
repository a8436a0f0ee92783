/** How many processes serve requests, decided from config once at start-up. */
import { availableParallelism } from 'node:os';
import type { PorticoConfig } from '../config/types.js';

/** Whether requests go to forked workers: with more than one, or unless a single one is served in-process. */
export function servesInWorkers(config: PorticoConfig, inProcess: boolean | undefined): boolean {
  return workerCount(config) > 1 || inProcess !== true;
}

/** `nginx_config.worker_processes`: `auto` is one per core, as nginx has it. */
export function workerCount(config: PorticoConfig): number {
  const n = config.nginx_config.worker_processes;
  return n === 'auto' ? availableParallelism() : Math.max(1, Math.floor(n));
}
