/*
 * What a webhook URL may be, as one regular expression: the server enforces it beside WHATWG's parse
 * (`new URL`, which alone takes what is not a URI: spaces, `http:host`), and the document publishes it
 * as the URL's `pattern`, so that a URL valid by the document is one the server takes, and the reverse.
 * Spelled in what ECMA-262 and Python's `re` read alike.
 */

/** An RFC 3986 path, query or fragment character. */
const URL_CHAR = "(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})";

const IPV4_PART = '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
const IPV4 = `(?:${IPV4_PART}[.]){3}${IPV4_PART}`;

const H16 = '[0-9A-Fa-f]{1,4}';
/** The first `n` groups of an address that `::` shortens, or none. */
const head = (n: number) => `(?:(?:${H16}:){0,${n}}${H16})?`;
const LS32 = `(?:${H16}:${H16}|${IPV4})`;
/** RFC 3986's IPv6address: eight groups, or fewer around one `::`, the last two maybe an IPv4 address. */
const IPV6 = [
  `(?:${H16}:){6}${LS32}`,
  `::(?:${H16}:){5}${LS32}`,
  `${head(0)}::(?:${H16}:){4}${LS32}`,
  `${head(1)}::(?:${H16}:){3}${LS32}`,
  `${head(2)}::(?:${H16}:){2}${LS32}`,
  `${head(3)}::${H16}:${LS32}`,
  `${head(4)}::${LS32}`,
  `${head(5)}::${H16}`,
  `${head(6)}::`,
].join('|');

/**
 * A name whose last label starts with a letter: WHATWG's parser reads a host that ends in a number as an
 * IPv4 address, and refuses it when that fails (`1.2.3.256`, `a.0x1`). No `%`, which it refuses in a
 * host once decoded. One name still passes this and fails the parse: a label `xn--…` that is not valid
 * Punycode.
 */
const NAME = "(?:[A-Za-z0-9._~!$&'()*+,;=-]*[.])?[A-Za-z][A-Za-z0-9-]*[.]?";

const PORT = ':(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';

/** http or https, a host, maybe a port, and no user name or password (nothing before the host). */
export const WEBHOOK_URL = new RegExp(
  `^[Hh][Tt][Tt][Pp][Ss]?://(?:\\[(?:${IPV6})\\]|${IPV4}|${NAME})(?:${PORT})?` +
    `(?:/${URL_CHAR}*)?(?:[?]${URL_CHAR}*)?(?:#${URL_CHAR}*)?$`,
);
