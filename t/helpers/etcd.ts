/** Starts Debian's etcd on free loopback ports with a temporary data dir; stopped by PID. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface EtcdServer {
  endpoint: string;
  readonly proc: ChildProcess;
  /** SIGKILL, keeping the data dir. */
  kill(): Promise<void>;
  /** Starts again on the same ports and data dir. */
  restart(): Promise<void>;
  /** SIGKILL and remove the data dir. */
  stop(): Promise<void>;
}

export async function startEtcd(): Promise<EtcdServer> {
  const dir = mkdtempSync(join(tmpdir(), 'portico-etcd-'));
  const client = await freePort();
  const peer = await freePort();
  const endpoint = `http://127.0.0.1:${client}`;
  let proc!: ChildProcess;
  let exited!: Promise<void>;

  const launch = async () => {
    proc = spawn(
      'etcd',
      [
        '--name', 'portico-test',
        '--data-dir', dir,
        '--listen-client-urls', endpoint,
        '--advertise-client-urls', endpoint,
        '--listen-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-cluster', `portico-test=http://127.0.0.1:${peer}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const p = proc;
    exited = new Promise<void>((r) => p.on('exit', () => r()));
    for (let i = 0; i < 100; i++) {
      try {
        const res = await fetch(`${endpoint}/health`);
        if (res.ok) return;
      } catch {
        // not up yet
      }
      if (p.exitCode !== null) throw new Error(`etcd exited: ${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`etcd did not become healthy: ${log}`);
  };
  await launch();

  const kill = async () => {
    proc.kill('SIGKILL');
    await exited;
  };
  return {
    endpoint,
    get proc() {
      return proc;
    },
    kill,
    restart: launch,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
