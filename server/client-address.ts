/**
 * Canonical spellings of client addresses, so that one client cannot look like many: `::ffff:1.2.3.4`,
 * `::ffff:102:304` and `1.2.3.4` are one IPv4 client, and an IPv6 client is its /64 (one home or host usually
 * gets a whole /64, so counting single addresses would hand it 2^64 rate-limit buckets).
 */
import { isIPv4, isIPv6 } from 'node:net';

/**
 * The rate-limit key for `address`: dotted IPv4 (mapped and compatible-mapped forms unwrapped), or the IPv6 /64
 * as `xxxx:xxxx:xxxx:xxxx::/64` (lower case, no leading zeros). Anything that is not an IP is returned trimmed,
 * bounded, as is.
 */
export function clientKey(address: string): string {
  const ip = canonicalIp(address);
  if (ip === undefined) return address.trim().slice(0, 100);
  if (isIPv4(ip)) return ip;
  return `${expandIPv6(ip).slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/**
 * `address` in canonical form: IPv4 dotted quad, or IPv6 compressed the RFC 5952 way (lower case). Accepts the
 * spellings that reach a server: brackets (`[::1]`), a zone (`fe80::1%eth0`, dropped), `host:port` for IPv4 and
 * `[v6]:port`. Undefined when it is not an IP address.
 */
export function canonicalIp(address: string): string | undefined {
  let a = address.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(a);
  if (bracketed) a = bracketed[1]!;
  else if (/^[\d.]+:\d+$/.test(a)) a = a.slice(0, a.lastIndexOf(':'));
  const zone = a.indexOf('%');
  if (zone !== -1) a = a.slice(0, zone);
  if (isIPv4(a)) return a;
  if (!isIPv6(a)) return undefined;
  const groups = expandIPv6(a);
  // ::ffff:a.b.c.d (mapped) is how a dual-stack socket reports an IPv4 client.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`;
  return compressIPv6(groups);
}

/** The eight 16-bit groups of a valid IPv6 address (embedded IPv4 tail included). */
function expandIPv6(a: string): number[] {
  let tail: number[] = [];
  const lastColon = a.lastIndexOf(':');
  const last = a.slice(lastColon + 1);
  if (last.includes('.')) {
    const o = last.split('.').map(Number);
    tail = [(o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!];
    a = a.slice(0, lastColon + 1) + '0';
  }
  const [head, rest] = a.includes('::') ? a.split('::') : [a, undefined];
  const parse = (s: string | undefined) => (s === undefined || s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = parse(head);
  const r = parse(rest);
  if (tail.length) (r.length ? r : h).pop();
  const right = [...r, ...tail];
  const fill = rest === undefined ? [] : new Array<number>(8 - h.length - right.length).fill(0);
  return rest === undefined ? [...h, ...tail] : [...h, ...fill, ...right];
}

function compressIPv6(groups: number[]): string {
  // RFC 5952: the longest run (first of equals) of two or more zero groups becomes '::'.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best === -1) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}
