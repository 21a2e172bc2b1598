// The attempt log of the trust torture tests (control-trust, candidate-tables-trust): each attempt an adversary
// makes is a case, expected refused (or allowed: the controls); one that gets through is an exposure.

export interface Case {
  who: string;
  attempt: string;
  expect: 'refused' | 'allowed';
  got: 'refused' | 'allowed';
  detail?: string;
}

export function trustCases() {
  const cases: Case[] = [];
  /** Runs one attempt; `fn` resolving (within 4 s) means etcd let it through. */
  const attempt = async (who: string, what: string, fn: () => unknown, expect: Case['expect'] = 'refused') => {
    let got: Case['got'] = 'allowed';
    let detail: string | undefined;
    try {
      await Promise.race([Promise.resolve().then(fn), new Promise((_, rej) => setTimeout(() => rej(new Error('timed out (refused at the TLS handshake)')), 4000))]);
    } catch (e) {
      got = 'refused';
      detail = (e as Error).message.split('\n')[0].slice(0, 160);
    }
    cases.push({ who, attempt: what, expect, got, detail });
  };
  /** The cases whose outcome was not the expected one, one line each. */
  const exposures = () => cases.filter((x) => x.got !== x.expect).map((x) => `${x.who}: ${x.attempt} was ${x.got}${x.detail ? ` (${x.detail})` : ''}`);
  return { cases, attempt, exposures };
}

/** What leaverCases needs of an etcd client (the node's own, with its certificate). */
interface WatchClient {
  watch(): { prefix(p: string): { create(): Promise<{ on(ev: 'data', fn: (r: { events: { type: string; kv: { key: Buffer } }[] }) => void): unknown; cancel(): Promise<void> }> } };
  getAll(): { prefix(p: string): { keys(): Promise<string[]> } };
}

/**
 * A member that leaves a per-epoch prefix (a roster, a direct-peer directory): it watches the epoch's prefix while
 * a member; `leave()` makes it leave and returns the new epoch and its prefix. Cases: nothing of the new epoch
 * through the watch it opened as a member, no read and no watch of the new prefix.
 */
export async function leaverCases(o: {
  who: string;
  client: WatchClient;
  prefix: string;
  /** The node clients' watchers (cancelled at the end of the test if this one fails first). */
  watchers: { cancel(): Promise<void> }[];
  cases: Case[];
  attempt: ReturnType<typeof trustCases>['attempt'];
  leave: () => Promise<{ epoch: string; prefix: string }>;
}): Promise<{ epoch: string; prefix: string }> {
  const seen: string[] = [];
  const w = await o.client.watch().prefix(o.prefix).create();
  o.watchers.push(w);
  w.on('data', (r) => r.events.forEach((e) => seen.push(`${e.type} ${e.kv.key.toString()}`)));
  const next = await o.leave();
  await new Promise((r) => setTimeout(r, 500));
  o.watchers.splice(o.watchers.indexOf(w), 1);
  await w.cancel().catch(() => undefined);
  const got = seen.some((x) => x.startsWith('Put') || x.includes(next.epoch)) ? 'allowed' : 'refused';
  o.cases.push({ who: o.who, attempt: 'see the new epoch through the watch it opened as a member', expect: 'refused', got, detail: seen.join('; ').slice(0, 160) });
  const list = () => o.client.getAll().prefix(next.prefix).keys().then((x) => (x.length ? x : Promise.reject(new Error('empty'))));
  await o.attempt(o.who, `read the new epoch ${next.prefix}`, list);
  await o.attempt(o.who, `watch the new epoch ${next.prefix}`, async () => {
    const x = await o.client.watch().prefix(next.prefix).create();
    await x.cancel();
  });
  return next;
}
