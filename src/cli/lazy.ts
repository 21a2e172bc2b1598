// The CLI's heavier helpers behind async doors: the admin-socket client (src/admin/client.ts), the socket's
// resolution (it reads the CLI config, with yaml), printList (yaml) and the document readers (ajv, yaml, the
// blueprint code) load with the first action that uses them, not when the command tree is declared (`zmesh --help`
// and `--version` load none of them).
import type * as Client from '../admin/client.ts';
import type * as Documents from './documents.ts';
import type * as Format from './format.ts';

export async function call<T = unknown>(...a: Parameters<typeof Client.call>): Promise<T> {
  return (await import('../admin/client.ts')).call<T>(...a);
}

export async function stream(...a: Parameters<typeof Client.stream>): ReturnType<typeof Client.stream> {
  return (await import('../admin/client.ts')).stream(...a);
}

/** The admin socket: --socket, $ZMESH_SOCKET, the CLI config's socket (docs/cli-config.md), /run/zmesh/admin.sock. */
export async function socketPath(opt?: string): Promise<string> {
  return (await import('./config.ts')).resolveSocket(opt);
}

export async function printList(...a: Parameters<typeof Format.printList>): Promise<void> {
  (await import('./format.ts')).printList(...a);
}

export async function readJsonDocument(...a: Parameters<typeof Documents.readJsonDocument>): Promise<unknown> {
  return (await import('./documents.ts')).readJsonDocument(...a);
}
