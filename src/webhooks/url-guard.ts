import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { promisify } from 'node:util';

/** Address ranges a webhook may not reach unless private targets are allowed, by what they are. */
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
];

// BlockList matches IPv4-mapped IPv6 (::ffff:127.0.0.1) against the IPv4 rules too.
const blockLists = REFUSED_RANGES.map(([name, subnets]) => {
  const list = new BlockList();
  for (const [network, prefix, type] of subnets) list.addSubnet(network, prefix, type);
  return [name, list] as const;
});

/** What kind of refused range `address` (an IP literal) is in, or undefined if it may be reached. */
export function refusedRange(address: string): string | undefined {
  const family = isIP(address);
  if (family === 0) return 'not an IP address';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  return blockLists.find(([, list]) => list.check(address, type))?.[0];
}

/** The webhook's host is, or resolves to, an address it may not reach: a permanent failure. */
export class WebhookAddressRefused extends Error {
  override readonly name = 'WebhookAddressRefused';

  constructor(
    readonly host: string,
    readonly address: string,
    readonly range: string,
  ) {
    super(
      host === address
        ? `${address} is a ${range} address`
        : `${host} resolves to ${address}, a ${range} address`,
    );
  }
}

export type HostLookup = (hostname: string) => Promise<LookupAddress[]>;

const lookupAll = promisify(dnsLookup);
const systemLookup: HostLookup = (hostname) => lookupAll(hostname, { all: true });

export interface UrlGuardOptions {
  /** `WEBHOOK_ALLOW_PRIVATE`: let webhooks reach private and loopback addresses (tests, internal receivers). */
  allowPrivate: boolean;
  lookup?: HostLookup;
}

/**
 * Resolves the URL's host and refuses it if any of its addresses is private, loopback, link-local,
 * unique-local, carrier-grade NAT, unspecified, reserved or multicast. Returns the addresses, so that the
 * request connects to exactly the ones checked (a second lookup could answer otherwise: DNS rebinding).
 */
export async function resolveWebhookHost(url: URL, options: UrlGuardOptions): Promise<LookupAddress[]> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const family = isIP(host);
  const addresses = family !== 0 ? [{ address: host, family }] : await (options.lookup ?? systemLookup)(host);
  if (addresses.length === 0) throw new Error(`${host} has no address`);
  if (options.allowPrivate) return addresses;
  for (const { address } of addresses) {
    const range = refusedRange(address);
    if (range) throw new WebhookAddressRefused(host, address, range);
  }
  return addresses;
}
