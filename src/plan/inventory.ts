// Node inventory: which nodes exist, their identity keys, endpoints and reserved ports.
//   nodes: [{id, publicKey, endpoints: [IPv4 or IPv6], reservedPorts: [...]}]
// A node without endpoints is hidden (behind NAT).
import { isIP } from 'node:net';
import { parseYamlDocument } from '../yaml.ts';
import { Key } from '../crypto/keys.ts';
import { ValidationError, unknownField, type Problem } from '../errors.ts';

export interface InventoryNode {
  id: string;
  /** X25519 node identity public key (base64). */
  publicKey: string;
  endpoints: string[];
  reservedPorts: number[];
}

export interface Inventory {
  nodes: InventoryNode[];
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const NODE_FIELDS = ['id', 'publicKey', 'endpoints', 'reservedPorts'];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses YAML or JSON inventory text and validates it (all problems at once). */
export function parseInventory(text: string): Inventory {
  return validateInventory(parseYamlDocument(text, 'inventory', 100));
}

export function validateInventory(raw: unknown): Inventory {
  const problems: Problem[] = [];
  const p = (code: string, path: string, message: string, hint: string) => problems.push({ code, path, message, hint });
  if (!isPlainObject(raw) || !Array.isArray(raw.nodes)) {
    if (isPlainObject(raw) && raw.nodes === undefined) p('E_REQUIRED', 'nodes', 'missing', 'write `nodes: [{id, publicKey, endpoints}]`');
    else p('E_TYPE', 'nodes', 'an inventory is an object with a list `nodes`', 'write `nodes: [{id, publicKey, endpoints}]`');
    throw new ValidationError(problems, 'inventory');
  }
  for (const k of Object.keys(raw)) if (k !== 'nodes') problems.push(unknownField(k, k, ['nodes']));
  const seen = new Set<string>();
  const nodes: InventoryNode[] = [];
  raw.nodes.forEach((n: unknown, i: number) => {
    const at = `nodes[${i}]`;
    if (!isPlainObject(n)) {
      p('E_TYPE', at, 'a node is an object', 'write {id, publicKey, endpoints}');
      return;
    }
    for (const k of Object.keys(n)) if (!NODE_FIELDS.includes(k)) problems.push(unknownField(`${at}.${k}`, k, NODE_FIELDS));
    const id = n.id;
    if (id === undefined) p('E_REQUIRED', `${at}.id`, 'missing', 'give the node its id');
    else if (typeof id !== 'string' || !LABEL.test(id)) {
      p('E_NAME_FORMAT', `${at}.id`, 'a node id is a DNS label (a-z, 0-9, -; at most 63)', 'rename the node');
    } else if (seen.has(id)) {
      p('E_DUPLICATE_NODE', `${at}.id`, `node ${id} is listed twice`, 'keep one entry per node');
    } else seen.add(id);
    if (n.publicKey === undefined) p('E_REQUIRED', `${at}.publicKey`, 'missing', 'add the key `zmesh keygen node` printed');
    else if (!Key.isValid(n.publicKey)) {
      p('E_KEY_FORMAT', `${at}.publicKey`, 'publicKey must be a base64 X25519 key (44 characters)', 'use the key `zmesh keygen node` printed');
    }
    const endpoints = n.endpoints ?? [];
    if (!Array.isArray(endpoints)) p('E_TYPE', `${at}.endpoints`, 'endpoints is a list of IP addresses', 'write endpoints: [203.0.113.7]');
    else
      endpoints.forEach((e: unknown, j: number) => {
        if (typeof e !== 'string' || isIP(e) === 0 || e.includes('%')) {
          p('E_ENDPOINT', `${at}.endpoints[${j}]`, 'an endpoint is an IPv4 or IPv6 address (no port)', 'write the address the node is reached at');
        }
      });
    const reserved = n.reservedPorts ?? [];
    if (!Array.isArray(reserved)) p('E_TYPE', `${at}.reservedPorts`, 'reservedPorts is a list of port numbers', 'write reservedPorts: [51820]');
    else
      reserved.forEach((r: unknown, j: number) => {
        if (!Number.isInteger(r) || (r as number) < 1 || (r as number) > 65535) {
          p('E_PORT', `${at}.reservedPorts[${j}]`, 'a port is an integer from 1 to 65535', 'fix the port number');
        }
      });
    nodes.push({
      id: id as string,
      publicKey: n.publicKey as string,
      endpoints: Array.isArray(endpoints) ? (endpoints as string[]) : [],
      reservedPorts: Array.isArray(reserved) ? (reserved as number[]) : [],
    });
  });
  if (problems.length) throw new ValidationError(problems, 'inventory');
  return { nodes };
}
