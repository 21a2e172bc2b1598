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
