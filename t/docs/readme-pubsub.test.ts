/**
 * The README's pub/sub recipes, run as written: the local recipe (librdkafka's
 * mock cluster through kcat, a route without kafka-proxy, `npm run pubsub`
 * produce and tail, `kill %1`) is read from README.md and run by bash against
 * a gateway process, and each command's answer is checked against what the
 * README says next to it; the prose's promise about `tail --follow` and Ctrl-C
 * is checked with the recipe's own lines. Only the addresses change: 9180 and
 * 9080 become the ephemeral ports the gateway listens on.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startKafkaMock } from '../helpers/kafka-mock.js';
import {
  commandFrom,
  groupAlive,
  localise as localiseAddresses,
  readmeCommands,
  readmeSection,
  runReadmeScript,
  shBlocks,
  startReadmeGateway,
  startReadmeScript,
  stopGroup,
  withoutNpmBanner,
  type Answer,
  type ReadmeCommand,
  type ReadmeGateway,
} from '../helpers/readme.js';

const KEY = 'readme-pubsub-key-0123456789abcdef';

let gw: ReadmeGateway;
const work = mkdtempSync(join(tmpdir(), 'portico-readme-pubsub-'));

beforeAll(async () => {
  gw = await startReadmeGateway(join(work, 'data'), KEY);
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  rmSync(work, { recursive: true, force: true });
});

const localise = (s: string): string => localiseAddresses(s, gw.ports);

const section = (): string => readmeSection('Pub/sub');
/** The recipe that runs without a Kafka cluster: the block that starts the mock through kcat. */
function localRecipe(): string {
  const blocks = shBlocks(section()).filter((b) => /\bkcat /.test(b));
  expect(blocks.length, 'the pub/sub section has one block with the mock cluster').toBe(1);
  return blocks[0]!;
}
const isAnswering = (l: string): boolean => l.startsWith('curl ') || /\bnpm run /.test(l);

/** Checks one answer against what the README says of it. */
function check(cmd: ReadmeCommand, answer: Answer): void {
  const what = `${cmd.text}${cmd.says ? `   # ${cmd.says}` : ''}\n-> ${answer.code}\n${answer.output}`;
  const isCurl = cmd.text.startsWith('curl ');
  if (isCurl) {
    expect(answer.code, what).toBeGreaterThanOrEqual(200);
    expect(answer.code, what).toBeLessThan(300);
  } else {
    expect(answer.code, `${what}\n(exit status)`).toBe(0);
  }
  if (!cmd.says) return;
  const prints = cmd.says.match(/^prints (.+)$/);
  if (prints && !isCurl) {
    expect(withoutNpmBanner(answer.output), what).toEqual(prints[1]!.split(', '));
    return;
  }
  throw new Error(`the README says "${cmd.says}" of \`${cmd.text}\`, which this test does not know how to check: teach it`);
}

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

function refused(hostPort: string): Promise<boolean> {
  const i = hostPort.lastIndexOf(':');
  return new Promise((resolve) => {
    const s = connect(Number(hostPort.slice(i + 1)), hostPort.slice(0, i));
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

test('the local recipe runs as written: the mock cluster, the route, produce and tail answer as the README says, and kill %1 stops the mock', async () => {
  const recipe = localRecipe();
  const cmds = readmeCommands(recipe, isAnswering);
  // The route, the producer and the tail client, each with what it prints.
  expect(cmds.filter((c) => /\bnpm run pubsub -- produce /.test(c.text) && c.says).length).toBe(1);
  expect(cmds.filter((c) => /\bnpm run pubsub -- tail /.test(c.text) && c.says).length).toBe(1);
  const stops = readmeCommands(recipe, (l) => l.startsWith('kill '));
  expect(stops.map((c) => c.says)).toEqual(['stops the mock cluster']);

  const run = await runReadmeScript(localise(recipe), { cwd: work, env: { KEY }, timeoutMs: 120_000 });
  try {
    expect(run.status, `bash exited ${run.status}:\n${localise(recipe)}\n${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.answers.length, `one answer per command in:\n${run.stdout}`).toBe(cmds.length);
    cmds.forEach((cmd, i) => check(cmd, run.answers[i]!));

    // `kill %1   # stops the mock cluster`: nothing the script started is left, and the broker's port is closed.
    const route = JSON.parse(run.answers[cmds.findIndex((c) => c.text.startsWith('curl '))]!.output) as {
      value: { upstream: { nodes: Record<string, number> } };
    };
    const [broker] = Object.keys(route.value.upstream.nodes);
    expect(broker, 'the route names the mock broker').toMatch(/^127\.0\.0\.1:\d+$/);
    expect(await until(() => !groupAlive(run.pgid), 5_000), 'the mock cluster (tail | kcat) is gone').toBe(true);
    expect(await refused(broker!), `${broker} refuses connections`).toBe(true);
  } finally {
    stopGroup(run.pgid);
  }
}, 150_000);

test('tail --follow prints what arrives until Ctrl-C, which exits with status 130, as the README says', async () => {
  const recipe = localRecipe();
  expect(section(), 'the README promises this of --follow').toMatch(/with\s+`--follow` it waits for new messages \(pushed as they arrive\) until Ctrl-C, which exits with status 130/);
  const route = commandFrom(recipe, /^curl -X PUT \S+\/routes\/kafka-local /);
  const produce = commandFrom(recipe, /\bnpm run pubsub -- produce /).replace(/\s+#.*$/, '');
  const tail = commandFrom(recipe, /\bnpm run pubsub -- tail /).replace(/\s+#.*$/, '');
  expect(tail).not.toMatch(/--follow/);

  // The broker the recipe's first lines start, started here so this test does not depend on the other.
  const mock = await startKafkaMock({ brokers: 1, topic: 'orders' });
  const env = { KEY, BROKER: mock.brokers[0]! };
  let follow: ReturnType<typeof startReadmeScript> | undefined;
  try {
    const setup = await runReadmeScript(localise(`${route}\n${produce}`), { cwd: work, env, timeoutMs: 60_000 });
    stopGroup(setup.pgid);
    expect(setup.status, `${setup.stdout}\n${setup.stderr}`).toBe(0);
    check({ text: route }, setup.answers[0]!);
    expect(withoutNpmBanner(setup.answers[1]!.output)).toEqual(['0', '1', '2']);

    follow = startReadmeScript(localise(`${tail} --follow`), { cwd: work, env, timeoutMs: 90_000 });
    const printed = (): string[] => withoutNpmBanner(follow!.stdout());
    const shown = (): string => `tail --follow printed:\n${follow!.stdout()}\n${follow!.stderr()}\n${gw.output().slice(-2000)}`;
    expect(await until(() => printed().length >= 3, 45_000), shown()).toBe(true);
    expect(printed()).toEqual(['one', 'two', 'three']);

    // The same lines produced again while tail follows: pushed to it as they arrive.
    const again = await runReadmeScript(localise(produce), { cwd: work, env, timeoutMs: 60_000 });
    stopGroup(again.pgid);
    expect(again.status, `${again.stdout}\n${again.stderr}`).toBe(0);
    expect(await until(() => printed().length >= 6, 30_000), shown()).toBe(true);
    expect(printed()).toEqual(['one', 'two', 'three', 'one', 'two', 'three']);
    expect(groupAlive(follow.pgid), 'tail --follow is still waiting').toBe(true);

    // Ctrl-C: the terminal signals the whole foreground process group. The client exits 130; npm's `sh -c`
    // (dash) then dies of the SIGINT it got too, and so npm, and the shell that ran the line reports 128 + 2.
    process.kill(-follow.pgid, 'SIGINT');
    const ended = await follow.done;
    const shellStatus = ended.status ?? 128 + constants.signals[ended.signal!];
    expect(shellStatus, `${ended.status ?? ended.signal}\n${ended.stdout}\n${ended.stderr}`).toBe(130);
    expect(await until(() => !groupAlive(ended.pgid), 5_000), 'nothing of the tail client is left running').toBe(true);
  } finally {
    if (follow) stopGroup(follow.pgid);
    await mock.stop();
  }
}, 150_000);

test("the Kafka route of the section's first example is accepted by the Admin API as written", async () => {
  // Its client lines need a Kafka with SASL at kafka-server1:9092, which the mock cluster cannot be; its route can be stored.
  const blocks = shBlocks(section()).filter((b) => b.includes('"kafka-proxy"'));
  expect(blocks.length).toBe(1);
  const route = commandFrom(blocks[0]!, /^curl /);
  const run = await runReadmeScript(localise(route), { cwd: work, env: { KEY }, timeoutMs: 30_000 });
  stopGroup(run.pgid);
  expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
  expect(run.answers.length).toBe(1);
  check({ text: route }, run.answers[0]!);
  const stored = JSON.parse(run.answers[0]!.output) as { value: { upstream: { scheme: string }; plugins: Record<string, unknown> } };
  expect(stored.value.upstream.scheme).toBe('kafka');
  expect(Object.keys(stored.value.plugins).sort()).toEqual(['kafka-proxy', 'pubsub-acl']);
}, 60_000);
