#!/usr/bin/env node
/**
 * `npm start`: load the config, start one gateway node in the foreground, and
 * stop cleanly on SIGINT/SIGTERM (in-flight requests finish, the store closes).
 */
import { createLogger } from './core/log/logger.js';
import { ConfigError, loadConfig } from './core/config/file.js';
import type { PorticoConfig } from './core/config/types.js';
import { StoreUnavailableError } from './core/store/types.js';
import { ListenError } from './core/process/listen-error.js';
import { preforkWorkers } from './core/process/prefork.js';
import { servesInWorkers } from './core/process/worker-count.js';

// pino's levels; another name makes pino throw with a stack trace from inside its constructor.
const LOG_LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function parseArgs(argv: string[]): { config?: string } {
  const out: { config?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-c' || a === '--config') out.config = argv[++i];
    else if (a.startsWith('--config=')) out.config = a.slice('--config='.length);
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: portico [--config path/to/config.yaml]\n  env: PORTICO_CONFIG, PORTICO_ADMIN_KEY, PORTICO_DATA_DIR\n');
      process.exit(0);
    } else {
      process.stderr.write(`portico: unknown argument ${a}\n`);
      process.exit(2);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const level = process.env.PORTICO_LOG_LEVEL ?? 'info';
  if (!LOG_LEVELS.includes(level)) fail(`invalid log level "${level}" (PORTICO_LOG_LEVEL): use one of ${LOG_LEVELS.join(', ')}`);
  const logger = createLogger(level);
  let gateway;
  let config: PorticoConfig | undefined;
  try {
    config = loadConfig({ path: args.config });
    // The workers load their modules while this process loads the gateway's (prefork.ts): imported after.
    if (servesInWorkers(config, false)) preforkWorkers(config);
    const { startGateway } = await import('./gateway.js');
    // Each line is printed when it becomes true: the data plane once every worker accepts, then the Admin API.
    gateway = await startGateway(config, {
      logger,
      rereadConfig: () => loadConfig({ path: args.config }),
      report: {
        generated(secrets) {
          // Where, never the key: standard output ends up in logs that more people read than the data dir.
          for (const s of secrets) process.stdout.write(`Generated ${s.what}: stored in ${s.file} (field ${s.field}, readable by this user only)\n`);
        },
        listening(what, a) {
          const suffix = what === 'Admin API' ? '/apisix/admin' : what === 'status API' ? '/status' : '';
          const [name, scheme] = what === 'data plane (HTTPS)' ? ['data plane', 'https'] : [what, 'http'];
          process.stdout.write(`Portico ${name} listening on ${scheme}://${fmt(a.address)}:${a.port}${suffix}\n`);
        },
      },
    });
  } catch (err) {
    // A store that cannot be reached or opened, or an address that cannot be bound, is the operator's to fix,
    // not a bug: say which config key and where, in one line, without a stack.
    const msg =
      err instanceof ConfigError || err instanceof ListenError
        ? err.message
        : err instanceof StoreUnavailableError && config?.deployment.config_provider === 'etcd'
          ? `cannot reach etcd at ${config.deployment.etcd.host.join(', ')} (deployment.etcd.host): ${err.message}`
          : err instanceof StoreUnavailableError
            ? err.message
            : ((err as Error).stack ?? String(err));
    fail(msg);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    gateway
      .close()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

function fail(msg: string): never {
  process.stderr.write(`portico: failed to start: ${msg}\n`);
  process.exit(1);
}

function fmt(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

void main();
