import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from './support/backend.js';
import { startRawBackend, type RawBackend } from './support/raw-backend.js';
import { CLIENT_TOKEN, rawExchange, splitResponses, startProxy, type RunningProxy } from './support/proxy.js';

const T = `X-Auth-Token: ${CLIENT_TOKEN}\r\n`;
const get = (extra: string): string => `GET /x HTTP/1.1\r\nHost: t\r\n${T}${extra}\r\n`;

/** Requests request smuggling and header injection are made of: each must be refused whole. */
const hostile: [string, string][] = [
  ['Content-Length and Transfer-Encoding together', `POST /x HTTP/1.1\r\nHost: t\r\n${T}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['two differing Content-Length headers', `POST /x HTTP/1.1\r\nHost: t\r\n${T}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`],
  ['a repeated identical Content-Length', `POST /x HTTP/1.1\r\nHost: t\r\n${T}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`],
  ['a Content-Length list', `POST /x HTTP/1.1\r\nHost: t\r\n${T}Content-Length: 5, 5\r\n\r\nhello`],
  ['a non-numeric Content-Length', `POST /x HTTP/1.1\r\nHost: t\r\n${T}Content-Length: +5\r\n\r\nhello`],
  ['Transfer-Encoding not ending in chunked', `POST /x HTTP/1.1\r\nHost: t\r\n${T}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`],
  ['Transfer-Encoding identity', `POST /x HTTP/1.1\r\nHost: t\r\n${T}Transfer-Encoding: identity\r\n\r\n`],
  ['Transfer-Encoding chunked twice', `POST /x HTTP/1.1\r\nHost: t\r\n${T}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['a bad chunk size', `POST /x HTTP/1.1\r\nHost: t\r\n${T}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`],
  ['a chunk size with a sign', `POST /x HTTP/1.1\r\nHost: t\r\n${T}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n`],
  ['a bad chunk extension', `POST /x HTTP/1.1\r\nHost: t\r\n${T}Transfer-Encoding: chunked\r\n\r\n5;a"b\r\nhello\r\n0\r\n\r\n`],
  ['an overlong chunk size', `POST /x HTTP/1.1\r\nHost: t\r\n${T}Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nhello\r\n0\r\n\r\n`],
  ['a chunk without CRLF after its data', `POST /x HTTP/1.1\r\nHost: t\r\n${T}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n`],
  ['an obs-fold header line', get('X-A: one\r\n two\r\n')],
  ['whitespace before the colon', get('X-A : v\r\n')],
  ['a tab before the colon', get('X-A\t: v\r\n')],
  ['a bare LF line ending', `GET /x HTTP/1.1\nHost: t\n${T}\n`],
  ['a bare LF inside the headers', get('X-A: v\nX-B: w\r\n')],
  ['a bare CR inside a header value', get('X-A: v\rX-B: w\r\n')],
  ['a bare CR in the request line', `GET /x\r HTTP/1.1\r\nHost: t\r\n${T}\r\n`],
  ['a NUL in a header value', get('X-A: a\u0000b\r\n')],
  ['a NUL in the request line', `GET /x\u0000y HTTP/1.1\r\nHost: t\r\n${T}\r\n`],
  ['a control character in a header value', get('X-A: a\u0001b\r\n')],
  ['a DEL in a header name', get('X-\u007fA: v\r\n')],
  ['a space in a header name', get('X A: v\r\n')],
  ['a header line without a colon', get('X-A v\r\n')],
  ['an empty header name', get(': v\r\n')],
  ['an invalid method', `G@T /x HTTP/1.1\r\nHost: t\r\n${T}\r\n`],
  ['a lowercase method', `get /x HTTP/1.1\r\nHost: t\r\n${T}\r\n`],
  ['an unknown method', `BREW /x HTTP/1.1\r\nHost: t\r\n${T}\r\n`],
  ['an invalid version', `GET /x HTTP/1.2\r\nHost: t\r\n${T}\r\n`],
  ['HTTP/2 in an HTTP/1 request line', `GET /x HTTP/2.0\r\nHost: t\r\n${T}\r\n`],
  ['a garbage version', `GET /x HTTX/1.1\r\nHost: t\r\n${T}\r\n`],
  ['two spaces in the request line', `GET  /x HTTP/1.1\r\nHost: t\r\n${T}\r\n`],
  ['a space inside the target', `GET /x y HTTP/1.1\r\nHost: t\r\n${T}\r\n`],
  ['an absolute-form target', `GET http://evil.example/x HTTP/1.1\r\nHost: t\r\n${T}\r\n`],
  ['an authority-form target outside CONNECT', `GET evil.example:80 HTTP/1.1\r\nHost: t\r\n${T}\r\n`],
  ['an asterisk target outside OPTIONS', `GET * HTTP/1.1\r\nHost: t\r\n${T}\r\n`],
  ['an HTTP/0.9 request', 'GET /x\r\n\r\n'],
  ['an HTTP/1.1 request without Host', `GET /x HTTP/1.1\r\n${T}\r\n`],
  ['two Host headers', get('Host: u\r\n')],
  ['a Host with a space', `GET /x HTTP/1.1\r\nHost: a b\r\n${T}\r\n`],
  ['a Host with userinfo', `GET /x HTTP/1.1\r\nHost: user@evil\r\n${T}\r\n`],
  ['a Host with a path', `GET /x HTTP/1.1\r\nHost: evil/x\r\n${T}\r\n`],
  ['a Host with a bad port', `GET /x HTTP/1.1\r\nHost: t:80x\r\n${T}\r\n`],
  ['Transfer-Encoding in an HTTP/1.0 request', `POST /x HTTP/1.0\r\nHost: t\r\n${T}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['a bare LF ending the head', `GET /x HTTP/1.1\r\nHost: t\r\n${T}\n`],
];

describe('proxy: malformed and hostile requests', () => {
  let backend: TestBackend;
  let proxy: RunningProxy;

  beforeAll(async () => {
    backend = await startBackend('victim');
    proxy = await startProxy({ backends: [{ name: 'victim', address: backend.address }] });
  });
  afterAll(async () => {
    await proxy?.stop();
    await backend?.close();
  });

  for (const [what, raw] of hostile) {
    it(`answers 400, closes and forwards nothing: ${what}`, async () => {
      const before = backend.seen.length;
      const got = await rawExchange(proxy.port, raw);
      expect(got).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(got).toContain('Connection: close\r\n');
      expect(splitResponses(got)).toHaveLength(1);
      expect(backend.seen.length).toBe(before);
    });
  }

  it('forwards nothing of a hostile request pipelined behind a good one', async () => {
    const before = backend.seen.length;
    const got = await rawExchange(proxy.port,
      get('') + `POST /smuggled HTTP/1.1\r\nHost: t\r\n${T}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled-2 HTTP/1.1\r\nHost: t\r\n${T}\r\n`);
    const statuses = splitResponses(got).map((r) => r.status);
    expect(statuses).toEqual([200, 400]);
    expect(backend.seen.slice(before).map((s) => s.url)).toEqual(['/x']);
  });

  it('still accepts the legitimate forms the strict checks sit next to', async () => {
    const ok = [
      get('X-A:no-space\r\n'),
      get('X-A: v\t\r\n'),
      `OPTIONS * HTTP/1.1\r\nHost: t\r\n${T}\r\n`,
      `POST /x HTTP/1.1\r\nHost: t\r\n${T}Transfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n`,
      `GET /x?a=1&b=%20 HTTP/1.0\r\n${T}\r\n`,
      `GET /x HTTP/1.1\r\nHost: example.com:8080\r\n${T}\r\n`,
      `GET /x HTTP/1.1\r\nHost: [::1]:8080\r\n${T}\r\n`,
      `GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n${T}\r\n`,
    ];
    for (const raw of ok) {
      const got = await rawExchange(proxy.port, raw, (g) => splitResponses(g).length === 1 && g.endsWith('}'));
      expect(got).toMatch(/^HTTP\/1\.1 200 /);
    }
  });
});

describe('proxy: malformed responses from a backend', () => {
  let raw: RawBackend;
  let proxy: RunningProxy;

  beforeAll(async () => {
    raw = await startRawBackend();
    proxy = await startProxy({ backends: [{ name: 'raw', address: raw.address }] });
  });
  afterAll(async () => {
    await proxy?.stop();
    await raw?.close();
  });

  const bad: [string, string][] = [
    ['an invalid status line', 'HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok'],
    ['Content-Length and Transfer-Encoding together', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'],
    ['two differing Content-Length headers', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!'],
    ['an obs-fold header line', 'HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 2\r\n\r\nok'],
    ['whitespace before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok'],
    ['a bare LF line ending', 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok'],
    ['a NUL in a header', 'HTTP/1.1 200 OK\r\nX-A: a\u0000b\r\nContent-Length: 2\r\n\r\nok'],
    ['a bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n'],
    ['not HTTP at all', 'SSH-2.0-OpenSSH_9.2\r\n'],
  ];
  for (const [what, response] of bad) {
    it(`answers 502 and closes that upstream connection: ${what}`, async () => {
      const connectionsBefore = raw.connections();
      raw.respondWith(response);
      const got = await rawExchange(proxy.port, get(''), (g) => splitResponses(g).length === 1 && g.endsWith('}'));
      expect(got).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n/);
      // The proxy closed that upstream connection: the backend sees it end.
      await raw.waitClosed(connectionsBefore + 1);
      const s = await proxy.stats();
      expect(s.backends[0]!.idle_connections).toBe(0);
    });
  }

  it('keeps a well-formed response flowing through the same raw backend', async () => {
    raw.respondWith('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    const got = await rawExchange(proxy.port, get(''), (g) => g.endsWith('ok'));
    expect(got).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });
});
