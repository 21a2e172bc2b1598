// The membership epochs a controller hands its candidate relay (the direct-peer directories' epochs of its last
// round), for relays driven by tests: the directory's rule (src/control/directory.ts) on the given members.
import { nextDirectories, type Directory } from '../../src/control/directory.ts';

export function epochsOf(members: () => ReadonlyMap<string, ReadonlySet<string>> | null): () => Map<string, string> | null {
  let dirs = new Map<string, Directory>();
  return () => {
    const m = members();
    if (!m) return null;
    const want = new Map([...m].map(([net, set]) => [net, new Map([...set].map((x) => [x, x]))]));
    dirs = nextDirectories(want, new Map([...dirs].map(([net, d]) => [net, [d]])));
    return new Map([...dirs].map(([net, d]) => [net, d.epoch]));
  };
}
