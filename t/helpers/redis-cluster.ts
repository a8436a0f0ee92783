/**
 * A three-master Redis Cluster on free loopback ports: Debian's redis-server
 * in cluster mode, each with a temporary working dir, joined by
 * `redis-cli --cluster create`; stopped by PID.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';

const run = promisify(execFile);

export interface RedisCluster {
  /** `127.0.0.1:port` of each master, as redis_cluster_nodes takes them. */
  readonly nodes: string[];
  stop(): Promise<void>;
}

async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis cluster: ${what} did not happen within 10 s`);
}

export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'portico-redis-cluster-'));
  const procs: ChildProcess[] = [];
  const ports: number[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(
      procs.map((p) => {
        if (p.exitCode !== null || p.signalCode !== null) return undefined;
        const exited = new Promise<void>((r) => p.once('exit', () => r()));
        process.kill(p.pid!, 'SIGKILL');
        return exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      ports.push(port);
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'];
      // The cluster bus on a port of its own (port + 10000 by default, which may be taken or out of range).
      args.push('--cluster-port', String(await freePort()));
      args.push('--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000');
      procs.push(spawn('redis-server', args, { stdio: 'ignore' }));
    }
    for (const port of ports) await until(`redis-server on ${port}`, async () => (await run('redis-cli', ['-p', String(port), 'ping'])).stdout.trim() === 'PONG');
    const nodes = ports.map((p) => `127.0.0.1:${p}`);
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
    for (const port of ports) {
      await until(`cluster_state:ok on ${port}`, async () => (await run('redis-cli', ['-p', String(port), 'cluster', 'info'])).stdout.includes('cluster_state:ok'));
    }
    return { nodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
