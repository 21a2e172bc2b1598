// The one registry of error codes: every code a user can see (CLI errors, ZMESH_JSON_ERRORS=1, the admin API,
// problems in reports, events and etcd status records), each with its kind, its HTTP status on the admin API, the
// area it belongs to, what it means and what to do. docs/errors.md's tables are generated from it
// (scripts/gen-errors-doc.ts); test/unit/error-codes.test.ts fails for a code the sources emit that is missing
// here, for an entry nothing emits, and for a docs/errors.md that is not what the generator writes.
// The blueprint's codes keep their meanings and hints in src/blueprint/codes.ts (the pure layer uses them) and
// join here with their kind, status and area. Pure: no I/O.
import { BLUEPRINT_CODES, type BlueprintCode } from './blueprint/codes.ts';
import type { ErrorKind } from './errors.ts';

/** Where a code comes from; docs/errors.md has one table per area, in this order. */
export const AREAS = ['general', 'blueprint', 'cli', 'plan', 'agent', 'admin', 'netns', 'runtime', 'control', 'lab'] as const;
export type Area = (typeof AREAS)[number];

export interface CodeInfo {
  kind: ErrorKind;
  /** The admin API's HTTP status for an error with this code (for any code that reaches it). */
  status: number;
  area: Area;
  /** What went wrong, on one line (markdown: `code` spans). */
  meaning: string;
  /** What to do about it. */
  hint: string;
  /** Why the code stays registered though no source emits it (e.g. records older agents still write). */
  reserved?: string;
}

/** The admin API's status for each kind, unless the code says otherwise. */
export const KIND_STATUS: Readonly<Record<ErrorKind, number>> = { invalid: 400, retryable: 503, internal: 500 };

type Extra = { status?: number; reserved?: string; more?: string };

function entry(kind: ErrorKind, area: Area, meaning: string, hint: string, x: Extra = {}): CodeInfo {
  return {
    kind,
    status: x.status ?? KIND_STATUS[kind],
    area,
    meaning: x.more ? `${meaning}. ${x.more}` : meaning,
    hint,
    ...(x.reserved ? { reserved: x.reserved } : {}),
  };
}
const invalid = (area: Area, meaning: string, hint: string, x?: Extra) => entry('invalid', area, meaning, hint, x);
const retryable = (area: Area, meaning: string, hint: string, x?: Extra) => entry('retryable', area, meaning, hint, x);
const internal = (area: Area, meaning: string, hint: string, x?: Extra) => entry('internal', area, meaning, hint, x);
/** A blueprint code: its meaning and hint from src/blueprint/codes.ts; `more` adds what the docs say besides. */
const bp = (code: BlueprintCode, x?: Extra) => invalid('blueprint', BLUEPRINT_CODES[code].meaning, BLUEPRINT_CODES[code].hint, x);

const ENTRIES = {
  // ── general ──────────────────────────────────────────────────────────────────────────────────────────────
  E_INVALID: invalid('general', 'input with several problems; each problem in `problems` keeps its own code', 'fix each problem listed'),
  E_INTERNAL: internal(
    'general',
    'a bug, or an error zmesh has no code for (with `ZMESH_JSON_ERRORS=1`, any failure that is not a zmesh error nor a system error); the message says where',
    'report it with `zmesh events` output',
  ),

  // ── blueprint ────────────────────────────────────────────────────────────────────────────────────────────
  E_TOO_LARGE: bp('E_TOO_LARGE', {
    status: 413,
    more: 'Also an admin API request body over the socket\'s limit, or (HTTP 414) a URL parameter over 256 characters',
  }),
  E_TOO_DEEP: bp('E_TOO_DEEP', { more: 'Blocks and `[`/`{` count alike' }),
  E_YAML_SYNTAX: bp('E_YAML_SYNTAX', {
    more: 'Also an explicit tag (`!!binary`, `!foo`) or more than 50 alias expansions; the message gives line and column. Inventories, agent configs and lab specs are read the same way',
  }),
  E_TYPE: bp('E_TYPE', {
    more: 'Also `null`, `.nan`, `.inf`, a string that is not valid Unicode, YAML 1.1 booleans like `yes` (strings in YAML 1.2); in inventories, agent configs, the CLI config and lab specs too',
  }),
  E_REQUIRED: bp('E_REQUIRED', { more: 'The message says `missing`. Also in inventories, agent configs and lab specs' }),
  E_UNKNOWN_FIELD: bp('E_UNKNOWN_FIELD', {
    more: 'Anywhere: blueprints, signed envelopes, inventories, agent configs (and their `etcd:` section) and lab specs; YAML `<<` merge keys too. When a known field is close (a typo, another case, a prefix) the message asks `did you mean ipRange?` and the hint says to rename it; otherwise the hint lists the allowed fields',
  }),
  E_NAME_FORMAT: bp('E_NAME_FORMAT', {
    more: 'Tenant, blueprint, network, access device, workload and volume names; node ids in blueprints, inventories and agent configs; tenant names in `trustedTenants`; lab names',
  }),
  E_VERSION: bp('E_VERSION'),
  E_KEY_FORMAT: bp('E_KEY_FORMAT', {
    more: 'Also the expected tenant key given to verification (path `tenantKey`), a key in `trustedTenants` or an inventory, and a `--key` file that holds no key (a zmesh key block, or — files of earlier versions — 44 characters of base64 on one line; create one with `zmesh keygen tenant FILE`)',
  }),
  E_IMAGE: bp('E_IMAGE', { more: 'Over 512 characters is too long' }),
  E_COMMAND: bp('E_COMMAND'),
  E_CPU: bp('E_CPU'),
  E_SIZE_FORMAT: bp('E_SIZE_FORMAT', { more: 'Negative, fractional bytes, an unknown unit, `1GB`, `1 Gi` are refused' }),
  E_SIZE_RANGE: bp('E_SIZE_RANGE'),
  E_MOUNT_PATH: bp('E_MOUNT_PATH', { more: 'Also `.` or empty segments, or over 4096 characters' }),
  E_MOUNT_RESERVED: bp('E_MOUNT_RESERVED', { more: 'The node would otherwise retry on every reconcile' }),
  E_CIDR_FORMAT: bp('E_CIDR_FORMAT', { more: 'Decimal octets without leading zeros' }),
  E_RANGE_HOST_BITS: bp('E_RANGE_HOST_BITS', { more: 'e.g. `10.20.1.0/16`' }),
  E_RANGE_PREFIX: bp('E_RANGE_PREFIX'),
  E_SUBNET_PREFIX: bp('E_SUBNET_PREFIX'),
  E_RANGE_TOO_SMALL: bp('E_RANGE_TOO_SMALL'),
  E_RANGE_RESERVED: bp('E_RANGE_RESERVED', { more: 'The nodes\' egress links use link-local addresses' }),
  E_RANGE_OVERLAP: bp('E_RANGE_OVERLAP', { more: 'Reported on the later network' }),
  E_DUPLICATE_NODE: bp('E_DUPLICATE_NODE', { more: 'Also a node listed twice in an inventory' }),
  E_DUPLICATE_KEY: bp('E_DUPLICATE_KEY'),
  E_DEVICE_EGRESS: bp('E_DEVICE_EGRESS', {
    more: "The device's egress leaves through its access node's egress link, which only such a network has",
  }),
  E_EGRESS_IPV6: bp('E_EGRESS_IPV6', {
    more: "IPv6 leaves by the network's egress link, and only a dual-stack network has IPv6 (docs/netns.md#ipv6-egress)",
  }),
  E_POLICY_DEFAULT: bp('E_POLICY_DEFAULT'),
  E_POLICY_SELECTOR: bp('E_POLICY_SELECTOR'),
  E_POLICY_REF: bp('E_POLICY_REF'),
  E_POLICY_CIDR: bp('E_POLICY_CIDR'),
  E_POLICY_PORT: bp('E_POLICY_PORT'),
  E_POLICY_TOO_MANY: bp('E_POLICY_TOO_MANY'),
  E_GROUP_FORMAT: bp('E_GROUP_FORMAT'),
  E_DUPLICATE_NAME: bp('E_DUPLICATE_NAME', { more: 'Reported on the second' }),
  E_DUPLICATE_MOUNT: bp('E_DUPLICATE_MOUNT'),
  E_WORKLOAD_NETWORK: bp('E_WORKLOAD_NETWORK'),
  E_WORKLOAD_NODE: bp('E_WORKLOAD_NODE'),
  E_IPV6_RANGE: bp('E_IPV6_RANGE', { more: 'Host bits set are `E_RANGE_HOST_BITS`, with the range meant' }),
  E_IPV6_OFF: bp('E_IPV6_OFF'),
  E_WORKLOAD_IP6: bp('E_WORKLOAD_IP6', { more: "The planner then checks the node's subnet6, its base, gateway6 and WireGuard address" }),
  E_WORKLOAD_IP: bp('E_WORKLOAD_IP', { more: "The planner then checks the node's subnet, the gateway and reserved addresses" }),
  E_WORKLOAD_IP_TAKEN: bp('E_WORKLOAD_IP_TAKEN', { more: 'Reported on the second; the planner checks it again for addresses it must keep' }),
  E_VOLUME_UNKNOWN: bp('E_VOLUME_UNKNOWN'),
  E_VOLUME_NODE: bp('E_VOLUME_NODE'),
  E_ENVELOPE: bp('E_ENVELOPE', {
    more: 'Also: not a mapping, `format` not `zmesh-signed-blueprint/1`, `alg` not `ed25519`, a public key or signature that is not canonical base64 of 32/64 bytes, or a plain blueprint where a signed one is required',
  }),
  E_SIGNATURE: bp('E_SIGNATURE', { more: 'Verified strictly (RFC 8032); any change to the blueprint causes it' }),
  E_TENANT_KEY: bp('E_TENANT_KEY', { more: 'Also a submission whose signer is not the key the agent or controller trusts for the tenant' }),
  E_TENANT_KEY_UNSIGNED: bp('E_TENANT_KEY_UNSIGNED'),
  E_CANONICAL: internal(
    'blueprint',
    'a value with no canonical JSON form (a lone UTF-16 surrogate, a non-finite number, a cycle, a non-plain object) reached signing or a record digest',
    'report it: validated input never has one',
  ),

  // ── cli ──────────────────────────────────────────────────────────────────────────────────────────────────
  E_USAGE: invalid(
    'cli',
    'a combination of options the command cannot run (`diagnose --port` without a flow, `rm` without `TENANT/NAME`, `--max-txn-ops` below 8, an unknown lab fault); with `ZMESH_JSON_ERRORS=1` also commander\'s usage errors (unknown option or command, missing argument or option, invalid choice), which otherwise print as `error: …`',
    'the message says what is expected; `--help`',
  ),
  E_FILE: invalid(
    'cli',
    'a file given to a command (or the CLI config file) does not exist, is a directory, or cannot be read (permission denied). One sentence names the file and what the command wants there: ``nope.yaml does not exist; `zmesh validate` wants a blueprint (YAML or JSON) here``',
    'check the path',
  ),
  E_FILE_EXISTS: invalid('cli', '`zmesh keygen` would overwrite an existing file; keys are never replaced silently', 'choose another path, or delete the old key first if you mean it'),
  E_DOCUMENT_KIND: invalid(
    'cli',
    'a file is another kind of zmesh document than the command wants: a signed envelope given to `validate` or `sign`, a plain blueprint to `verify`, `apply` or `controller apply`, a blueprint as `apply --plan` or `plan --nodes`, a key file as a document. The message says what the file is and what the command wants',
    'pass the right file; the hint says which command takes the one you gave (`zmesh verify` for an envelope, `zmesh sign` for a blueprint)',
  ),
  E_IO: retryable(
    'cli',
    '(`ZMESH_JSON_ERRORS=1`; otherwise `zmesh: <system message>`) a file could not be read or written for a reason of the system (`EACCES`, `ENOSPC`, `EROFS`…), named in the message',
    'fix the permissions or free space and run again; `--out` files are written whole or not at all',
  ),
  E_KEY_KIND: invalid(
    'cli',
    'a key file holds another kind of key than the command needs (a node X25519 key given to `sign`, a tenant key as `--signing-key`), or a public key where a secret is needed. Key files written by `zmesh keygen` start with `-----BEGIN ZMESH <KIND> <ALG> SECRET KEY-----` (or `PUBLIC KEY` for `--public-out`). Where a public key is wanted (`verify --tenant-key`, `controller --operator-key`, `controller tenant add NAME KEY`, `controller node approve ID KEY`), its base64 or its `--public-out` file is accepted; a secret key file there is refused and never printed',
    'pass the right file: `sign --key` a tenant key, `node approve --sign` an operator key, `controller --signing-key` a controller key, the agent\'s `identityKeyFile` a node key; a `.pub` file where a public key goes',
  ),
  E_SAME_VERSION: invalid(
    'cli',
    '`zmesh plan --previous OLD` with a blueprint of the same version as OLD: agents would refuse it as a replay',
    'raise the version and sign again, or `--allow-same-version` to re-plan the same blueprint',
  ),
  E_SOCKET_MISSING: retryable('cli', 'no agent listens on the admin socket', 'start the agent or pass `--socket`'),
  E_SOCKET_DENIED: invalid('cli', 'the socket refused this user (the admin socket is 0600, root only)', 'run as root or use the read-only socket'),
  E_SOCKET: retryable('cli', 'the agent\'s socket cannot be reached for another reason (the message names it)', 'check that the agent runs and `--socket` names its socket'),
  E_HTTP: internal(
    'cli',
    'the admin socket answered an HTTP error without a zmesh error body: something other than a zmesh agent listens there',
    'check what `--socket` points at',
  ),
  E_GRAPHVIZ: retryable(
    'cli',
    '`zmesh lab graph --out FILE.svg` (or another image format): Graphviz `dot` is missing or failed',
    'install graphviz (`apt-get install --no-install-recommends graphviz`), or write DOT with `--out FILE.dot`',
  ),
  E_CLI_CONFIG_MISSING: invalid('cli', 'the CLI config file `$ZMESH_CONFIG` names does not exist or is not a regular file', 'fix `$ZMESH_CONFIG` or unset it; `ZMESH_CONFIG=/dev/null` reads no file'),
  E_CLI_CONFIG_UNSAFE: invalid(
    'cli',
    'the CLI config file is writable by every user, or owned by another user than root or you: refused (anyone could point zmesh at their own socket or etcd)',
    '`chmod o-w` it, or `chown` it to yourself or root',
  ),
  E_CLI_CONFIG_ENV: invalid('cli', 'an environment variable the CLI reads has a value it does not know (`ZMESH_OUTPUT` not one of the output formats)', 'fix or unset the variable'),

  // ── plan ─────────────────────────────────────────────────────────────────────────────────────────────────
  E_ENDPOINT: invalid(
    'plan',
    'an inventory endpoint (or an agent config\'s `endpoints`) is not an IPv4/IPv6 address (no port, no zone)',
    'write the address the node is reached at',
  ),
  E_PORT: invalid('plan', 'an inventory\'s reserved port is not an integer 1–65535', 'fix the port'),
  E_NODE_UNKNOWN: invalid(
    'plan',
    'a network names a node that is not in the inventory; or `zmesh plan part PLAN NODE` (`plan --part NODE`) for a node the plan has no resource for; or a lab spec names a node it does not have',
    'add the node to the inventory or remove it from the network; for `plan part`, the hint lists the plan\'s nodes',
  ),
  E_NO_PUBLIC_NODE: invalid('plan', 'a network has hidden nodes or access devices but no public node to enter through', 'add a node with an endpoint to the network'),
  E_RANGE_EXHAUSTED: invalid('plan', 'no free `/subnetPrefix` left in the range for a new node or device', 'use a larger range or a longer subnet prefix'),
  E_PORT_EXHAUSTED: invalid('plan', 'a node has no free listen port from 51820 up', 'free reserved ports on the node'),
  E_WORKLOAD_IP_SUBNET: invalid('plan', 'a workload\'s fixed address lies outside its node\'s subnet', 'pick an address inside that subnet, or leave `ip` out'),
  E_WORKLOAD_IP_GATEWAY: invalid('plan', 'a workload\'s fixed address is the subnet gateway (`.1`)', 'pick another address'),
  E_WORKLOAD_IP_RESERVED: invalid('plan', 'a workload\'s fixed address is the network, broadcast or WireGuard (last host) address', 'pick another address'),
  E_WORKLOAD_IP6_SUBNET: invalid('plan', 'a workload\'s fixed IPv6 address (`ip6`) lies outside its node\'s subnet6', 'pick an address inside that subnet6, or leave `ip6` out'),
  E_WORKLOAD_IP6_RESERVED: invalid('plan', 'a workload\'s fixed IPv6 address (`ip6`) is its subnet6\'s base, gateway6 or WireGuard address', 'pick another address'),
  E_SUBNET_FULL: invalid('plan', 'a node\'s subnet has no free address for another workload', 'use a shorter subnet prefix or move workloads'),
  E_PREVIOUS_MISMATCH: invalid('plan', '`--previous` is a plan of another blueprint', 'pass the previous plan of this blueprint'),
  E_PLAN_FILE: invalid(
    'plan',
    'a plan file cannot be read or is neither `zmesh-plan/2` (compact) nor `zmesh-plan/1` (full, as written before the compact form)',
    'pass a plan written by `zmesh plan`',
  ),
  E_PLAN_FORMAT: invalid('plan', '`checkPlan` of a document that is not a plan', 'pass a plan written by `zmesh plan`'),
  E_PLAN_BLUEPRINT: invalid('plan', 'the plan is for another tenant or blueprint than the one it is checked against', 'pass the plan of this blueprint, or re-plan'),
  E_PLAN_NETWORKS: invalid('plan', 'the plan and the blueprint have different networks (one missing from the plan)', 're-plan from the blueprint'),
  E_PLAN_RANGE: invalid('plan', 'a plan network\'s range is not an IPv4 CIDR', 'the plan is damaged or hand-edited: re-plan from the blueprint'),
  E_PLAN_MEMBERS: invalid('plan', 'a plan network\'s resources are not exactly one per node of the network', 'the plan is damaged or hand-edited: re-plan from the blueprint'),
  E_PLAN_SUBNET: invalid(
    'plan',
    'a resource\'s subnet is not a `/subnetPrefix` inside the range, its gateway and WireGuard address are not the first and last host of it, or a device subnet lies outside the range',
    're-plan from the blueprint; a tampered plan is refused',
  ),
  E_PLAN_IPV6: invalid(
    'plan',
    'a dual-stack network\'s IPv6 fields are wrong: ipv6Range not a ULA /48 to /56 (or not the blueprint\'s), subnet6Prefix not derived, a subnet6 that is not the mirror of its IPv4 slot, gateway6 / wgAddress6 / address6 not the mirrored hosts, or IPv6 fields on some members and not others',
    're-plan from the blueprint; a tampered plan is refused',
  ),
  E_PLAN_OVERLAP: invalid('plan', 'subnets of two members of a plan network overlap', 're-plan from the blueprint; a tampered plan is refused'),
  E_PLAN_PEER_KEY: invalid('plan', 'two members of a network have the same WireGuard key, or a peer\'s key does not match its resource', 're-plan from the blueprint; a tampered plan is refused'),
  E_PLAN_ENDPOINT: invalid(
    'plan',
    'a resource\'s or peer\'s endpoint is not the node\'s first endpoint and listen port, or a hidden node (which cannot be dialled) has one',
    're-plan from the blueprint; a tampered plan is refused',
  ),
  E_PLAN_HIDDEN: invalid('plan', 'a resource\'s hidden flag does not match the inventory (hidden: no endpoint)', 're-plan with the current inventory'),
  E_PLAN_HIDDEN_PEER: invalid(
    'plan',
    'a hidden node does not enter through a public node of the network (`accessNode`), a public node has an access node, or a hidden node has other than exactly one relayed peer',
    're-plan from the blueprint; a tampered plan is refused',
  ),
  E_PLAN_KEEPALIVE: invalid('plan', 'a hidden node does not keep its tunnel open with a keepalive (`hiddenKeepalive` 1–65535 s)', 're-plan from the blueprint'),
  E_PLAN_PORT: invalid('plan', 'a listen port is used twice on a node, or is one of its reserved ports', 're-plan with the node\'s current `reservedPorts`'),
  E_PLAN_WORKLOAD: invalid('plan', 'a workload address is not a free host of its node\'s subnet, or is used twice', 're-plan from the blueprint'),
  E_PLAN_SEALED: invalid('plan', 'a resource\'s private key is sealed to another identity key than its node\'s in the inventory', 're-plan from the blueprint; a tampered plan is refused'),
  E_PLAN_MESH: invalid(
    'plan',
    '`zmesh plan expand` / `plan part` / `--part` of a compact plan whose members do not form a mesh (a hidden node or device entering through something that is not a public node of the network, a public node without endpoint; the message carries the detail code); also a `checkPlan` rule (a peer missing or entering elsewhere)',
    'the plan is damaged or hand-edited: re-plan from the blueprint',
  ),
  E_PLAN_PEERS: invalid('plan', 'a full plan leaves out a resource\'s peers, lists a peer twice, or a resource peers with itself', 're-plan from the blueprint'),
  E_PLAN_ALLOWED: invalid('plan', 'a peer\'s allowed-ips are not CIDRs, or overlap', 're-plan from the blueprint'),
  E_PLAN_COVER: invalid('plan', 'the allowed-ips of a resource\'s peers and its own subnet do not cover every subnet of the network', 're-plan from the blueprint'),
  E_PLAN_DIRECT: invalid(
    'plan',
    'a direct peer (`directSubnet`) on a public node or for a public node, whose `directSubnet` is not that node\'s subnet, or that has allowed-ips, an endpoint or a keepalive in the plan',
    're-plan; see docs/paths.md',
  ),
  E_ACCESS_NODE: invalid(
    'plan',
    '(detail code in an `E_PLAN_MESH` message) a hidden node or device enters through a member that is not a public node of the network',
    're-plan from the blueprint',
  ),
  E_PUBLIC_NO_ENDPOINT: invalid('plan', '(detail code in an `E_PLAN_MESH` message) a public node of the mesh has no endpoint', 're-plan from the blueprint'),

  // ── agent ────────────────────────────────────────────────────────────────────────────────────────────────
  E_TENANT_UNTRUSTED: invalid('agent', 'the blueprint\'s tenant is not in the agent\'s `trustedTenants` (or the controller\'s tenants)', 'add the tenant\'s key to the agent config'),
  E_REPLAY: invalid('agent', 'the version is not greater than the highest version accepted before (also after removal)', 'raise `version` and sign again', { status: 409 }),
  E_PART_FORMAT: invalid('agent', 'the plan part is not a `zmesh-node-plan/1` object', 'send `zmesh plan part PLAN NODE` output, or use `zmesh apply`'),
  E_NETWORK_ID_COLLISION: invalid(
    'control',
    'two networks (of two blueprints, or of one) have the same network id (a 50-bit hash of tenant, blueprint and network name): the controller gives that network no direct-peer directory, no candidate table and no roster, so its hidden nodes keep the relay only and its parts carry every member',
    'rename one of the networks (or the blueprint); a collision by chance is about one in 10^15 per pair, so also ask who chose the name',
  ),
  E_DIRECTORY_PENDING: retryable(
    'agent',
    'a hidden node\'s part names its network\'s direct-peer directory (etcd), and the entries this node reads there are not yet what the signed part says (count and SHA-256): the part waits and is tried again on every change of the directory',
    'normally gone within a second; if it stays, something other than the controller wrote or deleted keys under directory/ in etcd (`etcdctl get --prefix <prefix>/directory/`): a controller reads them again when it takes over (restart it) and rewrites what differs',
  ),
  E_ROSTER_PENDING: retryable(
    'agent',
    'the part names its network\'s roster (etcd: every member\'s subnet, name and policy addresses, kept once per network), and the entries this node reads there are not yet what the signed part says (count and SHA-256): the part waits and is tried again on every change of the roster',
    'normally gone within a second; if it stays, something other than the controller wrote or deleted keys under roster/ in etcd (`etcdctl get --prefix <prefix>/roster/`), or this node may not read them (its role\'s grants): a controller reads the rosters again when it takes over (restart it) and rewrites what differs',
  ),
  E_PART_BLUEPRINT: invalid('agent', 'the part is for another blueprint or version', 're-plan this version'),
  E_PART_NODE: invalid('agent', 'the part (or a resource in it) is for another node', 'send each node its own part'),
  E_PART_MISSING: invalid('agent', 'a network spans this node but the part has no resource for it', 're-plan'),
  E_PART_NETWORK: invalid('agent', 'a network in the part is not the blueprint\'s (name, id, range, prefix or egress differ)', 're-plan'),
  E_PART_SUBNET: invalid(
    'agent',
    'the subnet is not a `/subnetPrefix` of the range, the gateway or WireGuard address does not derive from it, or the network\'s subnet list is wrong',
    're-plan',
  ),
  E_PART_OVERLAP: invalid('agent', 'subnets of the network overlap', 're-plan'),
  E_PART_PORT: invalid('agent', 'the listen port is out of range', 're-plan'),
  E_PORT_IN_USE: invalid('agent', 'another blueprint already uses the listen port on this node', 're-plan with the port in the node\'s `reservedPorts`', { status: 409 }),
  E_PART_KEY: invalid('agent', 'the private key is sealed to another identity or resource, does not open, or does not match the public key', 're-plan against the node\'s current identity key'),
  E_SEAL_OPEN: invalid(
    'agent',
    'a sealed private key does not open with this node\'s identity (wrong node, wrong resource, tampered, malformed); the agent reports it as `E_PART_KEY`',
    're-plan against the node\'s current identity key',
  ),
  E_PART_PEER: invalid(
    'agent',
    'a peer has a bad key, endpoint or keepalive, or allowed-ips outside the range or overlapping; or a direct peer (`directSubnet`) on a public node, for a subnet that is not another subnet of the network, given twice, or with allowed-ips, endpoint or keepalive',
    're-plan',
  ),
  E_PART_POLICY: invalid(
    'agent',
    'the blueprint\'s network has a policy but the part carries no `members`, or a member address is not a /32 inside the range',
    're-plan with this version of zmesh (parts of networks with a policy carry their members)',
  ),
  E_PART_NAMES: invalid(
    'agent',
    'the part\'s `names` (what the network\'s resolver serves, docs/dns.md) are malformed, more than 30 000, name a workload, device or node that is not the network\'s in the blueprint, give an address outside the network\'s ranges (or an IPv6 address on an IPv4-only network), a workload of this node at another address than the part places it, or this node at another address than its gateway. Nothing changes',
    're-plan with this version of zmesh and send this node its new part',
  ),
  E_PART_WORKLOAD: invalid(
    'agent',
    'the part places a blueprint workload of this node nowhere, twice, on another network, at an address outside this node\'s subnet or reserved (network, gateway, WireGuard, broadcast), at another address than the blueprint asks for, or places a workload the blueprint does not run here. Nothing changes',
    're-plan and send this node its new part',
  ),
  E_CANDIDATES: invalid(
    'agent',
    '(`PUT /v1/candidates`, etcd `candidate-tables/<network>`) a candidate submission is malformed, names a network or node that is not a direct peer of this node, holds more than 8 endpoints for a node, or an endpoint that is not a canonical public-looking `ip:port` (loopback, link-local, multicast, inside the tenant range…). Nothing changes; see docs/paths.md',
    'candidates come from the control plane (the lab\'s carrier or the etcd controller): look for what wrote them',
  ),
  E_CANDIDATES_SIGNER: invalid('agent', '(etcd) `candidate-tables/<network>` is not signed by one of the agent\'s `etcd.controllerKeys`. Nothing changes', 'only the controller writes candidates; check `--signing-key` and `controllerKeys`'),
  E_CANDIDATES_SIGNATURE: invalid('agent', '(etcd) the signature of `candidate-tables/<network>` does not verify. Nothing changes', 'only the controller writes candidates; find who wrote it'),
  E_NOT_SUPPORTED: invalid(
    'agent',
    '`PUT /v1/candidates` on an agent without direct paths: its data-plane driver reads no peer counters (the netns driver does; test drivers may not)',
    'send candidates to agents on the netns driver',
  ),
  E_FLOW: invalid(
    'agent',
    '(`zmesh diagnose NET A B`, `GET /v1/policy/check`) A or B is not a workload, device or node of the network nor an address inside its range (a workload of another network is named as such), or the port is not `tcp/N`, `udp/N` or `icmp` (one port, N from 1 to 65535)',
    'name `workload:NAME`, `device:NAME`, `node:NAME`, a bare name or an address inside the range',
  ),
  E_APPLY: retryable(
    'agent',
    '(etcd status record) a network of an applied part failed to converge; the message is the data plane\'s error',
    'read `zmesh events` on the node; the reconcile loop retries',
  ),
  E_KEY_PERMISSIONS: invalid('agent', 'the identity key file is readable by others', '`chmod 600` it'),
  E_STORE_NEWER: invalid(
    'agent',
    '(agent start) a module of the state store has a schema newer than this build knows: a newer agent migrated it. Checked before anything is migrated; the store is left untouched',
    'run the newer build, or roll back by restoring the backup it made before migrating (`stateDir/backups/`, docs/agent.md#upgrades)',
  ),
  E_MTU: invalid('agent', 'the agent config\'s `underlayMtu` is not an integer from 1280 to 65535', 'leave it out to read it from the host'),
  E_DURATION: invalid(
    'agent',
    'a duration (the agent config\'s `reconcileInterval`, a controller option, a lab spec option) is not like `30s`, `15m`',
    'write e.g. `30s`',
  ),
  E_BACKEND: invalid('agent', 'the agent config\'s `wireguardBackend` is not `auto`, `kernel` or `userspace`', 'pick one; see docs/agent.md'),
  E_TENANTS_FILE: invalid('agent', 'the agent config\'s `trustedTenantsFile` cannot be read', 'point it to a YAML mapping tenant → key'),
  E_EGRESS_CONFIG: invalid(
    'agent',
    'the agent config\'s `egress:` section is not a mapping, or an `allow`/`deny` entry is not a CIDR or has host bits set (the message suggests the network address)',
    'see docs/agent.md#egress',
  ),
  E_DNS_UPSTREAM: invalid(
    'agent',
    'the agent config\'s `dnsUpstreams` is not a list of at most 3 IPv4 addresses, or names one that a tenant\'s egress can never reach (loopback, link-local, multicast) or that egress blocks (a private address not in `egress.allow`, or one in `egress.deny`)',
    'name public resolvers, or add a private one to `egress.allow`; see docs/dns.md#forwarding',
  ),

  // ── admin ────────────────────────────────────────────────────────────────────────────────────────────────
  E_NOT_FOUND: invalid('admin', 'no such network, blueprint, tenant, workload or route', '`zmesh net ls` lists networks; routes are under /v1', { status: 404 }),
  E_AMBIGUOUS: invalid('admin', 'a network name matches several networks', 'name it `tenant/blueprint/network` or by id', { status: 409 }),
  E_READ_ONLY: invalid('admin', 'a write on the read-only socket', 'use the admin socket', { status: 403 }),
  E_BUSY: retryable(
    'admin',
    'the admin socket has as many connections open as it admits, or this user (peer uid) has its share open; or too many requests that run commands (network detail, diagnose, policy and policy check, metrics, workloads, volumes, logs), or too many requests with a body (4 at once, 64 waiting), are running and waiting on this socket. Answered with `retry-after: 1`; see docs/admin-api.md#limits',
    'close idle connections, retry in a moment',
  ),
  E_REQUEST: invalid(
    'admin',
    'the request body or query does not match the schema, or the URL, body or HTTP is malformed; a 4xx of the HTTP layer keeps its status (415 for another content type than JSON or text, 408 for a request that did not arrive in time)',
    'see docs/admin-api.md',
  ),
  E_STOPPING: retryable('admin', 'the agent is stopping: a request that came on an open connection after the stop began', 'retry once the agent runs again'),

  // ── netns ────────────────────────────────────────────────────────────────────────────────────────────────
  E_NETNS_COMMAND: retryable(
    'netns',
    'a command of the data plane failed; the error carries its argv (never secret input), exit code and stderr, and the agent\'s report and event log show them',
    'read the stderr in `zmesh events`; the reconcile loop retries with backoff',
  ),
  E_SPAWN: retryable(
    'netns',
    'a command could not be started: the agent is out of file descriptors (`EMFILE`; `ENFILE` system-wide), out of processes or memory (`EAGAIN`, `ENOMEM`), or the binary is missing (`ENOENT`). The message names the errno. Never a crash: the reconcile loop backs off and retries',
    '`EMFILE`: raise `LimitNOFILE` (the unit sets 65536) and look for what holds descriptors (`ls /proc/$(pidof -s node)/fd | wc -l`); `ENOENT`: `scripts/deps.sh`',
  ),
  E_NETNS_PARSE: internal(
    'netns',
    'the output of `ip -json`, `wg show dump`, `nft -j` or the WireGuard UAPI is not what the parser expects',
    'report it with the tool versions (`ip -V`, `wg --version`, `nft --version`)',
  ),

  // ── runtime ──────────────────────────────────────────────────────────────────────────────────────────────
  E_WORKLOAD_INVALID: internal(
    'runtime',
    'a desired workload failed the runtime\'s own checks (never after a valid submission); its container is left as it was',
    'report it: the pipeline should have refused it',
  ),
  E_VOLUME_INVALID: internal(
    'runtime',
    'a desired volume failed the runtime\'s own checks (never after a valid submission); it is left as it was',
    'report it: the pipeline should have refused it',
  ),
  E_DOCKER_UNREACHABLE: retryable('runtime', 'the node has workloads but the Docker engine does not answer on `dockerSocket`', 'start dockerd or fix `dockerSocket` in the agent config'),
  E_DOCKER: retryable('runtime', 'the engine refused a call (create, start, remove, inspect); the message is the engine\'s', 'read the message; `docker info` on the node'),
  E_IMAGE_MISSING: retryable('runtime', 'the workload\'s image is not in the engine (no registry is used)', '`zmesh image base` for `zmesh/base:latest`, or `docker load` the image on the node'),
  E_VOLUME_NOT_READY: retryable(
    'runtime',
    'a volume the workload mounts does not exist yet (pool or volume error): the workload waits rather than run without its data',
    'see the `volume.error` event before it',
  ),
  E_NETWORK_NOT_READY: retryable(
    'runtime',
    'the tenant namespace has no bridge `b-<id>` yet: the container runs but is not attached',
    'see the network\'s errors (`zmesh status`); the next reconcile attaches it',
  ),
  E_ATTACH: retryable('runtime', 'adding a workload\'s veth or its port binding (nft table `bridge zmesh-wl` in the tenant namespace) failed', 'read the stderr in the message; retried'),
  E_ATTACH_READ: retryable('runtime', 'reading a workload\'s veth or port binding failed', 'read the stderr in the message; retried'),
  E_DETACH: retryable('runtime', 'removing a workload\'s veth or its port binding failed', 'read the stderr in the message; retried'),
  E_DISK_LIMIT_UNSUPPORTED: internal(
    'runtime',
    'the Docker engine\'s storage driver cannot limit a container\'s size (overlay2 on ext4, vfs, …): the workload is not run, never without its `disk` limit. The message names the driver and quotes the engine',
    'run dockerd with `--storage-driver=btrfs` and its data root on btrfs (or overlay2 on xfs mounted with `pquota`); see docs/runtime.md',
  ),
  E_CONTAINER_GONE: retryable('runtime', 'the container vanished between two steps of a reconcile', 'nothing: the next reconcile recreates it'),
  E_CONTAINER_NOT_RUNNING: retryable('runtime', 'the container stopped between two steps of a reconcile', 'nothing: the next reconcile restarts it'),
  E_WORKLOAD: retryable('runtime', 'making a workload\'s container run failed for a reason without a code of its own', 'read the message; retried'),
  E_WORKLOAD_REMOVE: retryable('runtime', 'removing a container failed; its volumes are not deleted while it stays', 'retried; read the message'),
  E_GC: retryable('runtime', 'removing stale veths, namespaces or generated `/etc` files failed', 'retried; read the message'),
  E_POOL: invalid(
    'runtime',
    'the storage pool cannot be made or mounted: `storageDevice` holds a non-btrfs filesystem (never formatted), or (kind `internal`) the pool\'s mount point holds another filesystem',
    'give the pool an empty disk or a free mount point',
  ),
  E_VOLUME: retryable('runtime', 'creating or limiting a subvolume failed', 'read the message (btrfs output); retried'),
  E_VOLUME_DELETE: retryable('runtime', 'deleting a subvolume failed', 'read the message (btrfs output); retried'),
  E_STORAGE_DEVICE: invalid('runtime', 'the agent config\'s `storageDevice` is not a `/dev/…` path', 'fix it, or leave it out for a pool image in `stateDir`'),
  E_SIZE: invalid('runtime', 'the agent config\'s `storagePoolSize` is not a size of at least 128Mi', 'write e.g. `2Gi`'),
  E_BUSYBOX_MISSING: invalid('runtime', '`zmesh image base`: no static busybox to build the base image from', '`apt-get install busybox-static`'),
  E_IMAGE_IMPORT: retryable('runtime', '`zmesh image base`: the engine refused the import', 'read the engine\'s message'),

  // ── control ──────────────────────────────────────────────────────────────────────────────────────────────
  E_ETCD_URLS: invalid('control', 'no etcd URL, a malformed one, or `http://` and `https://` mixed', 'pass `--etcd http://host:port[,…]` (or `https://` with TLS files)'),
  E_ETCD_TLS: invalid(
    'control',
    'a TLS file cannot be read, `--cert` without `--key`, TLS files with `http://` URLs, or `https://` without `--cacert`',
    'give the CA, and both client certificate and key',
  ),
  E_ETCD_CONFIG: invalid('control', 'the agent config\'s `etcd:` section is malformed', 'see docs/control-plane.md'),
  E_DEVICE_KEY_REQUIRED: invalid(
    'control',
    'in etcd mode an access device must bring its own public key (no generated private key is ever stored in etcd)',
    'add `publicKey` to the device in the blueprint',
  ),
  E_BLUEPRINT_KEY: invalid('control', 'a blueprint stored under another tenant/name key than its own', 'store each blueprint under its own `tenant/name`'),
  E_TENANT_IN_USE: invalid('control', 'a tenant still has blueprints and cannot be removed', 'remove its blueprints first', { status: 409 }),
  E_NOT_LEADER: retryable('control', 'this controller lost the leadership', 'nothing: another controller leads; this one waits'),
  E_NODE_NOT_ENROLLED: invalid(
    'control',
    'a node registered (signed record) but no identity key is pinned for it: it is not planned (pending)',
    'check the key on the node (`zmesh status`), then `zmesh controller node approve ID KEY`',
  ),
  E_NODE_KEY_MISMATCH: invalid(
    'control',
    'a registration signed by another identity key than the one pinned for the node: refused, never planned',
    'if the node was really re-installed: `node approve ID NEWKEY --replace`; otherwise someone is impersonating it',
  ),
  E_NODE_ENROLLED: invalid('control', '`node approve` for a node that is enrolled with another key', 'pass `--replace` for a re-installed node', { status: 409 }),
  E_RECORD_UNSIGNED: invalid(
    'control',
    'a node record that is not a signed record (`zmesh-node-record/v1`), e.g. from an agent older than the trust change',
    'upgrade the agent; nothing else writes `nodes/`',
  ),
  E_RECORD_SIGNATURE: invalid('control', 'a node record whose signature does not verify for its etcd key and signer (forged, altered or moved)', 'nothing to fix on the node: find who writes etcd'),
  E_RECORD_FORMAT: invalid('control', 'a node record that is not JSON, or whose signer or signature is malformed', 'nothing to fix on the node: find who writes etcd'),
  E_NODE_RECORD: invalid(
    'control',
    'a signed registration that names another node or key than its own, or claims too much (more than 16 endpoints, endpoints that are not IP addresses, more than 1,024 or invalid reserved ports)',
    'fix the agent config (`endpoints`, `reservedPorts`)',
  ),
  E_CONFLICT: invalid('control', 'an enrollment changed while `node approve` was writing it', 'look again (`node ls`) and retry', { status: 409 }),
  E_ENROLLMENT_UNSIGNED: invalid(
    'control',
    '`enroll/<id>` is not signed, and the controller runs with `--operator-key`: it is ignored (the node\'s last good enrollment stays)',
    'approve with `--sign OPERATOR-SECRET`; find who wrote it',
  ),
  E_ENROLLMENT_SIGNER: invalid('control', '`enroll/<id>` is signed by a key that is not one of the controller\'s `--operator-key`s', 'approve with `--sign OPERATOR-SECRET`; find who wrote it'),
  E_ENROLLMENT_SIGNATURE: invalid('control', 'the signature of `enroll/<id>` does not verify (altered, or moved from another node\'s key)', 'approve with `--sign OPERATOR-SECRET`; find who wrote it'),
  E_ENROLLMENT_FORMAT: invalid('control', '`enroll/<id>` is not an enrollment of that node', 'approve with `--sign OPERATOR-SECRET`; find who wrote it'),
  E_PART_UNSIGNED: invalid(
    'control',
    '(agent) a part\'s head carries no controller signature, and the agent has `etcd.controllerKeys`: not applied',
    'run the controller with `--signing-key`; find who wrote the part',
  ),
  E_PART_SIGNER: invalid('control', '(agent) a part signed by a key that is not in `etcd.controllerKeys`: not applied', 'list every controller\'s public key in `etcd.controllerKeys`'),
  E_PART_SIGNATURE: invalid(
    'control',
    '(agent) a part whose entries or head do not match the controller\'s signature (forged or altered): not applied',
    'find who writes etcd; the controller rewrites the part on its next change',
  ),

  // ── lab ──────────────────────────────────────────────────────────────────────────────────────────────────
  E_LAB_NAME: invalid('lab', 'the lab name is not a DNS label of at most 20 characters', 'set `name:` in the spec or pass `--name`'),
  E_LAB_NOT_FOUND: invalid('lab', 'no lab of that name under the lab directory', 'start it with `zmesh lab up SPEC` (`ZMESH_LAB_DIR` selects where labs live)', { status: 404 }),
  E_LAB_DIR: invalid(
    'lab',
    'the lab directory is under /run, /sys or /proc, or makes a socket path longer than the kernel allows',
    'choose a shorter directory elsewhere (`ZMESH_LAB_DIR`), or a shorter lab or node name',
  ),
  E_LAB_BUSY: retryable('lab', 'another lab command is working on this lab (its lock is held)', 'wait for it, or remove the lock file the hint names'),
  E_LAB_HOST: invalid('lab', 'the lab has no node, device or NAT router of that name', 'the hint lists the lab\'s hosts'),
  E_LAB_HOST_DOWN: retryable('lab', 'a lab host\'s namespaces are not running', '`zmesh lab up` again, or `zmesh lab fault LAB HOST reboot`'),
  E_LAB_IMAGE: invalid('lab', 'a lab workload uses another image than `zmesh/base:latest` (lab engines have no registry)', 'use `image: zmesh/base:latest` (busybox: sh, httpd, nc, …)'),
  E_LAB_UNDERLAY: invalid('lab', 'the lab spec combines `underlay: ipv6` with something that needs IPv4 on the lab internet (`controlPlane: etcd`)', 'write `underlay: dual`, or leave `controlPlane` out'),
  E_LAB_DOCKER: retryable(
    'lab',
    'a lab node\'s Docker engine did not come up, or (kind `invalid`) the lab runs workloads but dockerd is not installed',
    'read the last log lines in the hint; `apt-get install --no-install-recommends docker.io` (scripts/deps.sh does)',
  ),
  E_LAB_AGENT: retryable('lab', 'a lab node\'s agent did not come up (in time, or it exited)', 'read the last log lines in the hint'),
  E_LAB_ETCD: retryable('lab', 'the lab\'s etcd cluster or controller did not become healthy or converge, or an etcd helper failed', 'see the etcd and controller logs the hint names'),
  E_LAB_PUSH: retryable('lab', 'pushing plans to the lab\'s agents failed', 'see `zmesh lab status` and the agent logs under the lab directory'),
  E_LAB_FULL: retryable('lab', 'no free address left on the lab\'s internet for a roaming NAT router', 'bring the lab down and up again'),
  E_LAB_DEVICE: internal('lab', 'no wg-quick config for a lab device', 'run `zmesh lab up` again'),
  E_LAB_NETNS: internal('lab', 'a lab namespace could not be created', 'check that you run as root with `ip netns` working'),
  E_LAB_HOLDER: internal('lab', 'the namespace holder process of a lab host did not start', 'read the holder log the hint quotes'),
  E_KEY_FILE: invalid('lab', 'a tenant key file of the lab cannot be read', 'create one with `zmesh keygen tenant FILE`'),
  E_BLUEPRINT_FILE: invalid('lab', 'a blueprint file a lab spec names cannot be read', 'check the file name (relative to the spec)'),
  E_TENANT_MISMATCH: invalid('lab', 'a lab spec lists a blueprint under another tenant than its own', 'list it under its own tenant'),
  E_TENANT_UNKNOWN: invalid('lab', 'a lab device names a tenant the lab does not have', 'name a tenant of this lab'),
  E_DUPLICATE: invalid('lab', 'two lab hosts (or a tenant\'s blueprints) share a name, or a name is both a node and a device', 'names are unique: rename one'),
  E_DEVICE_NETWORK: invalid(
    'lab',
    'no blueprint of the lab device\'s tenant has its network listing the device (without a `publicKey`), or several do',
    'add `{name: <device>}` under the network\'s `access` list, or name the blueprint with `blueprint:`',
  ),
  E_NO_NODES: invalid('lab', 'a lab spec without nodes', 'list nodes'),
  E_CIDR: invalid('lab', 'a NAT router\'s `lan` is not an IPv4 CIDR from /16 to /29', 'e.g. `198.51.100.0/27`'),
  E_NAT_TYPE: invalid('lab', 'a NAT router\'s `type` is not `cone` or `symmetric`', 'write `type: cone` (the default) or `type: symmetric`'),
  E_NAT_UNKNOWN: invalid('lab', 'a node or device names a NAT router the spec does not list', 'list it under `nats`'),
  E_SHAPING: invalid('lab', 'a link\'s `delay` (up to 10 s), `loss` (a percentage) or `rate` (like `10mbit`) is malformed', 'e.g. `delay: 20ms`, `loss: 1%`, `rate: 10mbit`'),
} satisfies Record<string, CodeInfo>;

/** Every registered code. */
export type ErrorCode = keyof typeof ENTRIES;

/** The registry, in the order docs/errors.md lists it. */
export const CODES: Readonly<Record<ErrorCode, CodeInfo>> = ENTRIES;

/** The entry of `code`, or undefined when the registry lacks it. */
export function codeInfo(code: string): CodeInfo | undefined {
  return Object.hasOwn(CODES, code) ? CODES[code as ErrorCode] : undefined;
}

export function isRegistered(code: string): code is ErrorCode {
  return Object.hasOwn(CODES, code);
}

/** The admin API's HTTP status for an error: its code's, else (an unregistered code) its kind's. */
export function httpStatus(code: string, kind: ErrorKind): number {
  return codeInfo(code)?.status ?? KIND_STATUS[kind];
}
