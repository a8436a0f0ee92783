/**
 * A worker process's end of the IPC channel: one peer, the primary, reached
 * over node:cluster's channel (process.send). One per process.
 */
import { Channel, type ChannelOptions, type Peer } from './channel.js';

const primary: Peer = {
  name: 'the primary process',
  send(msg) {
    if (process.send === undefined) throw new Error('ipc: this process has no primary');
    // Sent on a closed channel, node emits an 'error' on process, which nobody hears: a crash. Thrown here, the asker fails.
    if (!process.connected) throw new Error('ipc: the primary process is gone');
    process.send(msg);
  },
};

let channel: Channel | undefined;

/** The channel to the primary, and the primary as its peer; created on first use. */
export function connectToPrimary(opts: ChannelOptions = {}): { channel: Channel; primary: Peer } {
  if (channel === undefined) {
    const ch = new Channel(opts);
    ch.addPeer(primary);
    process.on('message', (msg: unknown) => void ch.receive(msg, primary));
    channel = ch;
  }
  return { channel, primary };
}
