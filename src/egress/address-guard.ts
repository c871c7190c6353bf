import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { promisify } from 'node:util';

/**
 * Address ranges Kiln does not reach on someone else's say-so (a user's webhook URL, an image URL in a
 * provider's answer) unless private targets are allowed, by what they are.
 */
const REFUSED_RANGES: readonly [string, readonly [string, number, 'ipv4' | 'ipv6'][]][] = [
  [
    'unspecified',
    [
      ['0.0.0.0', 8, 'ipv4'],
      ['::', 128, 'ipv6'],
    ],
  ],
  [
    'loopback',
    [
      ['127.0.0.0', 8, 'ipv4'],
      ['::1', 128, 'ipv6'],
    ],
  ],
  [
    'private',
    [
      ['10.0.0.0', 8, 'ipv4'],
      ['172.16.0.0', 12, 'ipv4'],
      ['192.168.0.0', 16, 'ipv4'],
    ],
  ],
  ['carrier-grade NAT', [['100.64.0.0', 10, 'ipv4']]],
  [
    'link-local',
    [
      ['169.254.0.0', 16, 'ipv4'],
      ['fe80::', 10, 'ipv6'],
    ],
  ],
  ['unique-local', [['fc00::', 7, 'ipv6']]],
  [
    'reserved',
    [
      ['192.0.0.0', 24, 'ipv4'],
      ['198.18.0.0', 15, 'ipv4'],
      ['240.0.0.0', 4, 'ipv4'],
    ],
  ],
  [
    'multicast',
    [
      ['224.0.0.0', 4, 'ipv4'],
      ['ff00::', 8, 'ipv6'],
    ],
  ],
  // RFC 8215 lets each network choose where in a local-use NAT64 address the IPv4 address sits, so it
  // cannot be read back; such a translator serves its own network, never a public receiver.
  ['local-use NAT64', [['64:ff9b:1::', 48, 'ipv6']]],
  // A Teredo address (RFC 4380) names a server and an obfuscated client IPv4 address, reached through a
  // relay; public Teredo service is shut down, so no receiver needs one and neither address is judged.
  ['Teredo', [['2001::', 32, 'ipv6']]],
];

/**
 * IPv6 ranges whose addresses carry an IPv4 address, and the 16-bit group it starts at: IPv4-compatible
 * (`::/96`, deprecated), IPv4-translated (RFC 2765), NAT64 well-known (RFC 6052), 6to4 (RFC 3056).
 * Reaching one reaches, or is translated to, that IPv4 address, so it is judged by it. IPv4-mapped
 * addresses are not here: BlockList already judges them by their IPv4 address.
 */
const IPV4_CARRIERS: readonly [network: string, prefix: number, firstGroup: number][] = [
  ['::', 96, 6],
  ['::ffff:0:0:0', 96, 6],
  ['64:ff9b::', 96, 6],
  ['2002::', 16, 1],
];

const blockLists = REFUSED_RANGES.map(([name, subnets]) => {
  const list = new BlockList();
  for (const [network, prefix, type] of subnets) list.addSubnet(network, prefix, type);
  return [name, list] as const;
});

const carriers = IPV4_CARRIERS.map(([network, prefix, firstGroup]) => {
  const list = new BlockList();
  list.addSubnet(network, prefix, 'ipv6');
  return [list, firstGroup] as const;
});

/** Why an address may not be reached. */
export interface AddressRefusal {
  range: string;
  /** The IPv4 address an IPv6 address carries, when it was refused for being in `range`. */
  carried?: string;
}

/** Why `address` (an IP literal) may not be reached, or undefined if it may. */
export function addressRefusal(address: string): AddressRefusal | undefined {
  const family = isIP(address);
  if (family === 0) return { range: 'not an IP address' };
  const range = rangeOf(address, family === 4 ? 'ipv4' : 'ipv6');
  if (range) return { range };
  const carried = family === 6 ? carriedIPv4(address) : undefined;
  const carriedRange = carried === undefined ? undefined : rangeOf(carried, 'ipv4');
  return carriedRange ? { range: carriedRange, carried } : undefined;
}

// BlockList matches IPv4-mapped IPv6 (::ffff:127.0.0.1) against the IPv4 rules too.
function rangeOf(address: string, type: 'ipv4' | 'ipv6'): string | undefined {
  return blockLists.find(([, list]) => list.check(address, type))?.[0];
}

function carriedIPv4(address: string): string | undefined {
  const firstGroup = carriers.find(([list]) => list.check(address, 'ipv6'))?.[1];
  if (firstGroup === undefined) return undefined;
  const [high = 0, low = 0] = ipv6Groups(address).slice(firstGroup, firstGroup + 2);
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

/** The eight 16-bit groups of a valid IPv6 literal, `::` expanded and a trailing dotted quad split. */
function ipv6Groups(address: string): number[] {
  const parse = (part: string | undefined): number[] =>
    part
      ? part.split(':').flatMap((group) => {
          if (!group.includes('.')) return [parseInt(group, 16)];
          const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number);
          return [(a << 8) | b, (c << 8) | d];
        })
      : [];
  const [head, tail] = address.split('::');
  const before = parse(head);
  const after = parse(tail);
  return [...before, ...Array<number>(8 - before.length - after.length).fill(0), ...after];
}

/** The URL's host is, or resolves to, an address that may not be reached: a permanent failure. */
export class AddressRefused extends Error {
  override readonly name = 'AddressRefused';

  constructor(
    readonly host: string,
    readonly address: string,
    readonly range: string,
    readonly carried?: string,
  ) {
    const because = carried === undefined ? '' : ` (it carries ${carried})`;
    super(
      host === address
        ? `${address} is a ${range} address${because}`
        : `${host} resolves to ${address}, a ${range} address${because}`,
    );
  }
}

export type HostLookup = (hostname: string) => Promise<LookupAddress[]>;

const lookupAll = promisify(dnsLookup);
const systemLookup: HostLookup = (hostname) => lookupAll(hostname, { all: true });

export interface AddressGuardOptions {
  /**
   * Let requests reach private and loopback addresses: internal webhook receivers
   * (`WEBHOOK_ALLOW_PRIVATE`), tests.
   */
  allowPrivate: boolean;
  lookup?: HostLookup;
}

/**
 * Resolves the URL's host and refuses it if any of its addresses is private, loopback, link-local,
 * unique-local, carrier-grade NAT, unspecified, reserved or multicast, carries such an IPv4 address, or
 * is local-use NAT64 or Teredo. Returns the addresses, so that the request connects to exactly the ones
 * checked (a second lookup could answer otherwise: DNS rebinding).
 */
export async function resolveAllowedHost(url: URL, options: AddressGuardOptions): Promise<LookupAddress[]> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const family = isIP(host);
  const addresses = family !== 0 ? [{ address: host, family }] : await (options.lookup ?? systemLookup)(host);
  if (addresses.length === 0) throw new Error(`${host} has no address`);
  if (options.allowPrivate) return addresses;
  for (const { address } of addresses) {
    const refusal = addressRefusal(address);
    if (refusal) throw new AddressRefused(host, address, refusal.range, refusal.carried);
  }
  return addresses;
}

/** Hands a connection the addresses already checked, so that it cannot resolve to others. */
export function pinnedLookup(addresses: LookupAddress[]): LookupFunction {
  return (_hostname, options, callback) => {
    const first = addresses.find((a) => !options.family || a.family === options.family) ?? addresses[0]!;
    if (options.all) callback(null, addresses);
    else callback(null, first.address, first.family);
  };
}
