// The blueprint's error codes, each with what it means and what to do. They join the one registry of codes,
// src/codes.ts (kind, HTTP status, area), from which docs/errors.md's tables are generated.
import type { Problem } from '../errors.ts';

export const BLUEPRINT_CODES = {
  E_TOO_LARGE: {
    meaning: 'the text is over 1 MiB, or a list has more than 10,000 items',
    hint: 'split the blueprint, or remove the oversized part',
  },
  E_TOO_DEEP: {
    meaning: 'the text nests deeper than 64 levels; a blueprint needs about 6',
    hint: 'remove the deeply nested value; blueprints are at most a few levels deep',
  },
  E_YAML_SYNTAX: {
    meaning: 'the text is not valid YAML/JSON, has a duplicate key, several documents, tags, or too many aliases',
    hint: 'fix the syntax at the given line and column; keys must be unique and aliases are limited',
  },
  E_TYPE: {
    meaning: 'a value has the wrong type (e.g. a string where a number or a list is expected, NaN, Infinity)',
    hint: 'use the type the blueprint format documents for this field',
  },
  E_REQUIRED: {
    meaning: 'a required field is missing (or a list that needs at least one item is empty)',
    hint: 'add the field; see docs/blueprint-format.md',
  },
  E_UNKNOWN_FIELD: {
    meaning: 'a field the format does not know (includes __proto__ and constructor)',
    hint: 'remove the field or fix its spelling',
  },
  E_NAME_FORMAT: {
    meaning: 'a name or node id is not a DNS label',
    hint: 'use 1-63 characters of a-z, 0-9 and "-", not starting or ending with "-"',
  },
  E_DUPLICATE_NAME: {
    meaning: 'two networks, workloads, volumes, access devices of one network, or mounts of one workload share a name',
    hint: 'give each one a distinct name',
  },
  E_DUPLICATE_NODE: {
    meaning: 'a node id appears twice in one network\'s nodes',
    hint: 'list each node once',
  },
  E_DUPLICATE_KEY: {
    meaning: 'two access devices of one network have the same public key',
    hint: 'give each device its own key pair (WireGuard tells peers apart by key)',
  },
  E_DUPLICATE_MOUNT: {
    meaning: 'two volumes of one workload are mounted at the same path',
    hint: 'use a distinct mount path for each volume',
  },
  E_VERSION: {
    meaning: 'version is not an integer between 1 and 2^53-1',
    hint: 'use a whole number ≥ 1, and raise it on every change',
  },
  E_CIDR_FORMAT: {
    meaning: 'ipRange is not an IPv4 CIDR like 10.20.0.0/16',
    hint: 'write four decimal octets (no leading zeros), a slash and a prefix length',
  },
  E_RANGE_HOST_BITS: {
    meaning: 'ipRange (or ipv6Range) has bits set after its prefix',
    hint: 'use the network address of the range (the suggested value is in the message)',
  },
  E_RANGE_PREFIX: {
    meaning: 'ipRange prefix is outside /8 to /22',
    hint: 'use a prefix between /8 and /22',
  },
  E_SUBNET_PREFIX: {
    meaning: 'subnetPrefix is not an integer longer than the range prefix and at most 29',
    hint: 'pick a subnetPrefix between (range prefix + 1) and 29; 24 is the default',
  },
  E_RANGE_TOO_SMALL: {
    meaning: 'the range has fewer subnets (2^(subnetPrefix - rangePrefix)) than nodes plus access devices',
    hint: 'use a larger range (shorter prefix) or a longer subnetPrefix',
  },
  E_RANGE_RESERVED: {
    meaning: 'ipRange overlaps 0.0.0.0/8, 127.0.0.0/8 (loopback), 169.254.0.0/16 (link-local), 224.0.0.0/4 (multicast) or 240.0.0.0/4 (reserved)',
    hint: 'use a private range such as 10.20.0.0/16, 172.16.0.0/16 or 192.168.0.0/20',
  },
  E_DEVICE_EGRESS: {
    meaning: 'an access device has egress: true on a network without egress',
    hint: 'set the network\'s egress: true, or remove the device\'s egress',
  },
  E_EGRESS_IPV6: {
    meaning: 'a network asks for IPv6 egress without egress, or without IPv6',
    hint: 'set egress: true on a dual-stack network, or remove egressIpv6',
  },
  E_POLICY_DEFAULT: {
    meaning: "a network policy's default is not allow or deny",
    hint: 'write default: deny (only what the rules allow) or default: allow',
  },
  E_POLICY_SELECTOR: {
    meaning: 'a policy from/to entry is not workload:NAME, device:NAME, node:NAME, group:NAME, cidr:A.B.C.D/N or any',
    hint: 'e.g. from: [group:web], to: [workload:db]; see docs/policy.md',
  },
  E_POLICY_REF: {
    meaning: "a policy names a workload, device, node or group that is not in the network (a workload on another network, a group nobody in the network has)",
    hint: 'name a workload on this network, one of its access devices or nodes, or a group one of them has',
  },
  E_POLICY_CIDR: {
    meaning: 'a policy cidr: is not an IPv4 CIDR without host bits inside the network range',
    hint: 'write a CIDR inside the network\'s ipRange, e.g. cidr:10.1.3.0/24',
  },
  E_POLICY_PORT: {
    meaning: 'a policy port is not tcp/N, tcp/N-M, udp/N, udp/N-M (1-65535, N <= M), icmp or any',
    hint: 'e.g. ports: [tcp/5432, udp/53, icmp]',
  },
  E_POLICY_TOO_MANY: {
    meaning: 'a network policy has more than 1,000 rules, or a rule more than 1,000 selectors or ports',
    hint: 'use groups instead of listing workloads one by one',
  },
  E_GROUP_FORMAT: {
    meaning: 'a group name is not a DNS label, is listed twice, or a workload or device has more than 64 groups',
    hint: 'groups are DNS labels, e.g. groups: [web, frontend]',
  },
  E_RANGE_OVERLAP: {
    meaning: 'two networks of the blueprint have overlapping ranges (ipRange, or the ipv6Range they give)',
    hint: 'give each network a disjoint ipRange (and ipv6Range)',
  },
  E_KEY_FORMAT: {
    meaning: 'a public key is not 44 characters of canonical base64 for 32 bytes',
    hint: 'use the output of `wg pubkey` (or `zmesh keygen` for tenant keys)',
  },
  E_IMAGE: {
    meaning: 'image is empty, too long, or has characters a docker reference cannot have',
    hint: 'use a reference like "docker.io/library/nginx:1.27" or "name@sha256:…"',
  },
  E_COMMAND: {
    meaning: 'a command argument contains a NUL character',
    hint: 'remove the NUL character; process arguments cannot carry it',
  },
  E_CPU: {
    meaning: 'cpu is not a number greater than 0 and at most 256',
    hint: 'use a number of cores such as 0.5, 1 or 4',
  },
  E_SIZE_FORMAT: {
    meaning: 'memory, disk or size is not a whole number of bytes or a string like "256Mi", "1G"',
    hint: 'use an integer, or digits with one of the units K, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024)',
  },
  E_SIZE_RANGE: {
    meaning: 'memory is below 4Mi, disk below 16Mi, a volume size below 1Mi, or a size is above 2^53-1 bytes',
    hint: 'use a larger (or smaller) size',
  },
  E_MOUNT_PATH: {
    meaning: 'a mount is not an absolute path, or contains a ".." segment, or is too long',
    hint: 'use an absolute path like /data without ".."',
  },
  E_MOUNT_RESERVED: {
    meaning: 'a mount is /proc, /dev, /sys or below, or /etc/hosts, /etc/hostname or /etc/resolv.conf: the container engine owns them (runc refuses a volume there)',
    hint: 'mount the volume elsewhere, e.g. /data',
  },
  E_WORKLOAD_NETWORK: {
    meaning: 'a workload names a network the blueprint does not define',
    hint: 'use the name of one of the blueprint\'s networks',
  },
  E_WORKLOAD_NODE: {
    meaning: 'a workload\'s node is not one of its network\'s nodes',
    hint: 'add the node to the network, or run the workload on a node of the network',
  },
  E_IPV6_RANGE: {
    meaning: 'a network\'s ipv6Range is not an IPv6 CIDR, not a /48 to /56, or not inside fc00::/7 (unique local addresses)',
    hint: 'write a ULA range like fd12:3456:789a::/48, or leave ipv6Range out to get one derived from tenant and network',
  },
  E_IPV6_OFF: {
    meaning: 'an IPv6 field on an IPv4-only network: ipv6Range together with ipv6: false, or a workload ip6 on a network with ipv6: false',
    hint: 'remove the IPv6 field, or ipv6: false',
  },
  E_WORKLOAD_IP6: {
    meaning: 'a workload ip6 is not an IPv6 address, or lies outside its network\'s ipv6Range',
    hint: 'use an address inside the node\'s subnet6 (see the plan), or leave ip6 out to get the IPv4 host mirrored',
  },
  E_WORKLOAD_IP: {
    meaning: 'a workload ip is not an IPv4 address, or lies outside its network\'s range',
    hint: 'use an address inside the network range (and inside the node\'s subnet), or leave ip out',
  },
  E_WORKLOAD_IP_TAKEN: {
    meaning: 'two workloads ask for the same ip in one network',
    hint: 'give each workload its own address, or leave ip out and let the planner choose',
  },
  E_VOLUME_UNKNOWN: {
    meaning: 'a workload mounts a volume the blueprint does not define',
    hint: 'define the volume under volumes, or fix the name',
  },
  E_VOLUME_NODE: {
    meaning: 'a workload mounts a volume that lives on another node',
    hint: 'put the workload and the volume on the same node',
  },
  E_ENVELOPE: {
    meaning: 'a signed envelope has the wrong shape (format, alg, key or signature encoding, extra fields) or its blueprint is not in normalized form',
    hint: 'sign the blueprint again with `zmesh sign`; do not edit the envelope by hand',
  },
  E_SIGNATURE: {
    meaning: 'the signature does not match the blueprint and public key',
    hint: 'the blueprint or signature was changed after signing; sign it again',
  },
  E_TENANT_KEY: {
    meaning: 'the signature is valid, but made by another key than the expected tenant key',
    hint: 'sign with the tenant\'s key, or check which tenant key you expect',
  },
  E_TENANT_KEY_UNSIGNED: {
    meaning: 'a tenant key was given (--tenant-key) but the blueprint is plain: there is no signature to check it against',
    hint: 'pass the signed envelope (`zmesh sign`), or drop --tenant-key',
  },
} as const satisfies Record<string, { meaning: string; hint: string }>;

export type BlueprintCode = keyof typeof BLUEPRINT_CODES;

/** A problem with the registry's hint (or a more specific one). */
export function problem(code: BlueprintCode, path: string, message: string, hint?: string): Problem {
  return { code, path, message, hint: hint ?? BLUEPRINT_CODES[code].hint };
}
