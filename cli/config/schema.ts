import * as z from 'zod';
import { RUNTIMES } from './runtimes.js';

/**
 * The one definition of `uproxy.json`. Defaults live here and nowhere else; `init` writes the
 * JSON Schema generated from this (`uproxy.schema.json`) so editors complete and check the file.
 * Objects are strict: a misspelt key is an error rather than a silently ignored setting.
 */

export { RUNTIMES } from './runtimes.js';
export const runtimeName = z.enum(RUNTIMES).describe('Where machines run: host processes, QEMU VMs, or Unikraft via kraft');
export type RuntimeName = z.infer<typeof runtimeName>;

/** Used in process names, tap names and file names, so kept short and plain. */
export const machineNamePattern = /^[a-z][a-z0-9-]{0,23}$/;
const fleetName = z
  .string()
  .regex(machineNamePattern, 'must start with a letter and use only a-z, 0-9 and "-" (at most 24 characters)')
  .describe('Fleet name, used to name machines, logs and network devices');

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 digest: 64 lowercase hex digits');

/** 0 asks the runtime for a free port once; the fleet then keeps it while it runs. */
const port = z.number().int().min(0).max(65535);

export const DEFAULT_PORTS = { proxy: 8080, admin: 8081, backend: 8080 } as const;
const positiveMs = z.number().int().min(1);

/** The proxy's own limit (proxy/src/config.h NAME_MAX_LEN less its terminating NUL). */
export const tokenNamePattern = /^[A-Za-z0-9_.-]{1,63}$/;
const tokenName = z.string().regex(tokenNamePattern, 'must be 1-63 characters of A-Z, a-z, 0-9, "_", "." or "-"');

const clientToken = z.strictObject({
  name: tokenName.describe('Shown in the proxy stats (auth.by_token) and access log; `uproxy token add NAME` adds one'),
  sha256: sha256Hex.describe('SHA-256 of the token; the plaintext never goes into this file'),
  created: z.iso.datetime().optional().describe('When `uproxy token add` made it (RFC 3339, UTC); shown by `uproxy token list`'),
  expires: z.iso
    .datetime()
    .optional()
    .describe('From this time (RFC 3339, UTC) the proxy refuses the token with 401 "token expired"; none: never'),
});
export type ClientToken = z.infer<typeof clientToken>;

const timeouts = z
  .strictObject({
    connectMs: positiveMs.default(2000).describe('Upstream connect'),
    responseMs: positiveMs.default(30000).describe('Upstream response headers'),
    headerMs: positiveMs.default(10000).describe('Client request line and headers'),
    idleMs: positiveMs.default(60000).describe('Idle client keep-alive connection'),
    shutdownMs: positiveMs.default(10000).describe('Drain deadline when the proxy is stopped'),
  })
  .prefault({});

/** A DNS name (a leading `*.` for a wildcard) or an IPv4 address, as a certificate's SAN. */
const certificateName = z
  .string()
  .regex(
    /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/,
    'must be a DNS name such as proxy.example.test (or *.example.test) or an IPv4 address',
  )
  .max(253)
  .refine((name) => !/^[\d.]+$/.test(name) || /^(\d{1,3})(\.\d{1,3}){3}$/.test(name) && name.split('.').every((octet) => Number(octet) <= 255), 'must be an IPv4 address with 4 octets of at most 255');

/** Let's Encrypt's production directory, what `acme.directoryUrl` defaults to. */
export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

/** A DNS name a public CA can validate with http-01 or tls-alpn-01: no IP address, no wildcard (those need dns-01). */
const acmeDomain = z
  .string()
  .max(253)
  .regex(
    /^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/,
    'must be a DNS name with a dot, such as fleet.example.com (no wildcard, no IP address: http-01 and tls-alpn-01 validate one name at a time)',
  );

const acme = z
  .strictObject({
    email: z.email('must be an email address').describe('Contact address the CA sends expiry and policy notices to (the ACME account\'s contact)'),
    domains: z
      .array(acmeDomain)
      .min(1)
      .max(100)
      .refine((d) => new Set(d.map((n) => n.toLowerCase())).size === d.length, 'must not name a domain twice')
      .describe('Names the certificate covers; each must resolve to this host for the CA to validate it'),
    directoryUrl: z
      .url({ protocol: /^https?$/, error: 'must be the http(s) URL of an RFC 8555 directory' })
      .default(LETS_ENCRYPT_DIRECTORY)
      .describe(
        "The ACME CA's directory. Default: Let's Encrypt production; https://acme-staging-v02.api.letsencrypt.org/directory is its staging CA (untrusted certificates, generous rate limits), and any RFC 8555 directory works",
      ),
    challenge: z
      .enum(['http-01', 'tls-alpn-01'])
      .default('http-01')
      .describe(
        'http-01: the CA fetches http://DOMAIN/.well-known/acme-challenge/TOKEN from the proxy\'s plain listener (proxy.publishHttp, port 80); ' +
          'tls-alpn-01: the CA connects to port 443 (proxy.publish) with ALPN acme-tls/1',
      ),
  })
  .describe('mode acme: the certificate comes from an ACME CA (Let\'s Encrypt by default); `up`, `uproxy cert renew` and the renewal service obtain and renew it');

const tls = z
  .strictObject({
    mode: z
      .enum(['off', 'local-ca', 'files', 'acme'])
      .default('off')
      .describe(
        'HTTPS on the client port. local-ca (what `init` writes): `init`/`up` make a project CA in .uproxy/tls/ and `up` issues and renews the proxy certificate; ' +
          'files: your own certificate chain and key (certFile, keyFile); acme: from an ACME CA such as Let\'s Encrypt (see acme), for a fleet published under a domain; off (when the key is absent, as in projects made before HTTPS): plain HTTP, ' +
          'which `up` refuses to publish beyond this host unless allowPlainHttp is true',
      ),
    certFile: z.string().min(1).optional().describe('mode files: the PEM certificate chain, leaf first (relative to uproxy.json)'),
    keyFile: z.string().min(1).optional().describe('mode files: the PEM private key of the leaf certificate (relative to uproxy.json; keep it mode 0600)'),
    names: z
      .array(certificateName)
      .optional()
      .describe('mode local-ca: names and addresses the proxy certificate covers besides localhost, 127.0.0.1 and the proxy\'s own addresses'),
    allowPlainHttp: z
      .boolean()
      .optional()
      .describe('mode off: let proxy.publish serve plain HTTP beyond this host, where anyone on the path can read the X-Auth-Token'),
    acme: acme.optional(),
  })
  .superRefine((t, ctx) => {
    if (t.mode === 'files') {
      for (const key of ['certFile', 'keyFile'] as const) {
        if (t[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'is required when mode is "files"' });
      }
    } else {
      for (const key of ['certFile', 'keyFile'] as const) {
        if (t[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `is only used when mode is "files" (mode is "${t.mode}")`, input: t[key] });
      }
    }
    if (t.allowPlainHttp !== undefined && t.mode !== 'off') {
      ctx.addIssue({ code: 'custom', path: ['allowPlainHttp'], message: `is only used when mode is "off" (mode is "${t.mode}": the proxy serves HTTPS)`, input: t.allowPlainHttp });
    }
    // Your own certificate names what it covers; a name here could only disagree with it.
    if (t.names !== undefined && t.mode !== 'local-ca') {
      ctx.addIssue({ code: 'custom', path: ['names'], message: `is only used when mode is "local-ca" (mode is "${t.mode}")`, input: t.names });
    }
    if (t.mode === 'acme' && t.acme === undefined) {
      ctx.addIssue({ code: 'custom', path: ['acme'], message: 'is required when mode is "acme": {"email": "you@example.com", "domains": ["fleet.example.com"]}' });
    }
    if (t.mode !== 'acme' && t.acme !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['acme'], message: `is only used when mode is "acme" (mode is "${t.mode}")`, input: t.acme });
    }
  })
  .prefault({});

const proxy = z
  .strictObject({
    app: z.string().min(1).default('proxy').describe('Directory of the proxy sources (relative to uproxy.json)'),
    binary: z.string().min(1).default('build/uproxy-proxy').describe('The built proxy, relative to app'),
    port: port.default(DEFAULT_PORTS.proxy).describe('Client port (0: pick a free one)'),
    adminPort: port.default(DEFAULT_PORTS.admin).describe('Admin API port, never published (0: pick a free one)'),
    algorithm: z.enum(['round-robin', 'least-conn', 'p2c']).default('round-robin'),
    timeouts,
    maxConnections: z.number().int().min(1).default(10000),
    tokens: z.array(clientToken).min(1).describe('Client tokens accepted in X-Auth-Token'),
    adminTokenSha256: sha256Hex.describe('SHA-256 of the admin API bearer token'),
    publish: z
      .string()
      .regex(/^(\d{1,3}(\.\d{1,3}){3}):(\d{1,5})$/, 'must be ADDRESS:PORT on the host, such as 0.0.0.0:8080')
      .optional()
      .describe(
        'Where clients on other machines reach the proxy, as ADDRESS:PORT of this host: the host runtime\'s proxy listens there itself (instead of 127.0.0.1:port); ' +
          'the VM runtimes forward it to the proxy with an nftables DNAT rule. Nothing else is published. With proxy.tls.mode off it needs proxy.tls.allowPlainHttp',
      ),
    publishHttp: z
      .string()
      .regex(/^(\d{1,3}(\.\d{1,3}){3}):(\d{1,5})$/, 'must be ADDRESS:PORT on the host, such as 0.0.0.0:80')
      .optional()
      .describe(
        'Host runtime, HTTPS only: a plain HTTP listener of the proxy at ADDRESS:PORT that answers ACME http-01 challenges and redirects everything else to https:// (308). ' +
          'With tls mode acme and the http-01 challenge it defaults to port 80 of proxy.publish\'s address',
      ),
    tls,
    accessLog: z
      .boolean()
      .default(false)
      .describe('One JSON line per request (time, token name, method, path, status, backend, bytes, latency_ms) in the proxy\'s log: `uproxy logs proxy`'),
  })
  .superRefine((p, ctx) => {
    if (p.port !== 0 && p.port === p.adminPort) {
      ctx.addIssue({ code: 'custom', path: ['adminPort'], message: `must differ from proxy.port (both are ${p.port})`, input: p.adminPort });
    }
    if (p.tls.mode === 'acme' && p.publish === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['publish'],
        message: 'is required with tls mode "acme": the CA must reach the proxy at your domain, so publish it, usually as "0.0.0.0:443"',
      });
    }
    if (p.publishHttp !== undefined && p.tls.mode === 'off') {
      ctx.addIssue({ code: 'custom', path: ['publishHttp'], message: 'redirects to HTTPS, which tls mode "off" does not serve: set proxy.tls.mode, or remove publishHttp', input: p.publishHttp });
    }
    if (p.publishHttp !== undefined && p.publishHttp === p.publish) {
      ctx.addIssue({ code: 'custom', path: ['publishHttp'], message: `must differ from proxy.publish (both are ${p.publish})`, input: p.publishHttp });
    }
    const seen = new Set<string>();
    p.tokens.forEach((t, i) => {
      if (seen.has(t.name)) ctx.addIssue({ code: 'custom', path: ['tokens', i, 'name'], message: `duplicate token name "${t.name}"`, input: t.name });
      seen.add(t.name);
    });
  });

const health = z
  .strictObject({
    path: z.string().regex(/^\/\S*$/, 'must be an absolute URL path such as /health').default('/health'),
    intervalMs: positiveMs.default(1000),
    timeoutMs: positiveMs.default(1000),
    fall: z.number().int().min(1).default(2).describe('Consecutive failures that take a backend down'),
    rise: z.number().int().min(1).default(2).describe('Consecutive successes that bring it back up'),
  })
  .prefault({});

const backends = z
  .strictObject({
    count: z.number().int().min(1).max(64).default(3).describe('How many backends `up` runs (`up --backends N` overrides)'),
    app: z.string().min(1).default('backend').describe('Directory of the backend app (relative to uproxy.json)'),
    binary: z.string().min(1).default('build/backend').describe('The built backend, relative to app'),
    command: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe(
        'Host runtime: how to run your own backend app, in its app directory (a program on PATH, or a path relative to app such as ./run.sh; a launcher script that execs or starts the server is fine). ' +
          'Placeholders: {host}, {port}, {address} (host:port), {name} (backend-N). Default: [binary, "--listen", "{address}", "--name", "{name}"]. ' +
          'The app is built with make when app has a Makefile; without one there is nothing to build',
      ),
    env: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name such as PORT'), z.string())
      .optional()
      .describe('Host runtime: environment variables added for your backend app; values take the placeholders of command'),
    port: port.default(DEFAULT_PORTS.backend).describe('Port each backend listens on inside its machine (the host runtime picks free loopback ports instead)'),
    maxConnections: z
      .number()
      .int()
      .min(0)
      .max(1_000_000)
      .default(200)
      .describe(
        "Connections the proxy opens to one backend at most (0: no limit). Keep it below what the backend accepts, so slow clients cannot take its last connection from health checks and other clients: the default backend holds 256 on a host or Linux guest; a Unikraft backend holds LWIP_NUM_TCPCON - 1 (63 with the template's Kraftfile), so give such fleets 48",
      ),
    health,
  })
  .prefault({});

const network = z
  .strictObject({
    bridge: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,15}$/, 'must be a Linux interface name: 1-15 characters of A-Z, a-z, 0-9, "_", "." or "-"')
      .default('uproxy0'),
    subnet: z
      .string()
      .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/, 'must be an IPv4 network in CIDR form such as 172.44.0.0/24')
      .default('172.44.0.0/24')
      .refine((cidr) => {
        const [address = '', prefix = ''] = cidr.split('/');
        return address.split('.').every((octet) => Number(octet) <= 255) && Number(prefix) >= 8 && Number(prefix) <= 29;
      }, 'must have octets of at most 255 and a prefix length between 8 and 29'),
  })
  .prefault({})
  .describe('The bridge and subnet of the VM runtimes (qemu, kraft)');

const qemu = z
  .strictObject({
    guest: z.enum(['microvm', 'unikraft']).default('microvm').describe('microvm: Linux + an initramfs uproxy builds; unikraft: a kraft-built kernel'),
    board: z.enum(['pc', 'microvm']).default('pc').describe('QEMU machine type for microvm guests; "microvm" boots faster but needs the host TSC frequency under TCG'),
    kernel: z.string().min(1).optional().describe("Linux bzImage for microvm guests; default: the host's /boot/vmlinuz-*, else Debian's linux-image-cloud-amd64"),
    memoryMiB: z
      .number()
      .int()
      .min(4)
      .default(96)
      .describe('Memory of each microvm guest (measured minimum: 72 MiB). Unikraft guests ignore it: they take unikraft.proxyMemoryMiB and unikraft.backendMemoryMiB'),
    accel: z
      .enum(['auto', 'kvm', 'tcg'])
      .default('auto')
      .describe('VM acceleration: auto is KVM when a probe guest boots under it, else TCG (the verdict is cached until the host reboots); `up --accel` overrides it'),
  })
  .prefault({})
  .describe('The qemu runtime');

/**
 * How the scaffold's apps become Unikraft guests (the kraft runtime, and the qemu runtime's
 * `unikraft` guest kind). Memory is per machine: a unikernel has no swap and no overcommit,
 * so what lwip and the proxy's buffers need must fit in it.
 */
const unikraft = z
  .strictObject({
    mode: z
      .enum(['native', 'elfloader'])
      .default('native')
      .describe('native: the C code compiled into the kernel (Kraftfile + Makefile.uk); elfloader: a static-pie Linux binary run by the prebuilt base kernel'),
    rootfs: z
      .enum(['dockerfile', 'directory'])
      .default('dockerfile')
      .describe('elfloader only: build the rootfs from the Dockerfile (needs BuildKit) or from rootfs/ filled by `make -f rootfs.mk` (Kraftfile.rootfs-dir)'),
    network: z
      .enum(['kraft', 'uproxy'])
      .default('kraft')
      .describe('kraft: `kraft net create` makes the bridge; uproxy: the bridge of the qemu runtime (network.bridge), created by uproxy itself'),
    proxyMemoryMiB: z
      .number()
      .int()
      .min(8)
      .default(40)
      .describe(
        'Memory of the proxy machine. HTTPS takes most of it: in this Unikraft build every allocation takes at least a 4 KiB page, and OpenSSL holds ' +
          '~4,100 small ones once a certificate is loaded, ~50 more per TLS connection. Measured (native Unikraft 0.16.3 with OpenSSL 3.0, ' +
          'LWIP_NUM_TCPCON=256, QEMU TCG): 20 concurrent HTTPS clients needed 32 MiB (28 failed), hence 40 with headroom; plain HTTP (tls off) ' +
          'served 50 clients from 16 MiB. elfloader guests run the general-purpose base kernel: give them 64 or more.',
      ),
    backendMemoryMiB: z
      .number()
      .int()
      .min(8)
      .default(12)
      .describe(
        'Memory of each backend machine. The default backend serves at most LWIP_NUM_TCPCON - 1 clients at once (63 with the template\'s Kraftfile) ' +
          'and allocates 8 KiB of buffers per connected client, besides what lwip takes per connection. Measured as for the proxy with 62 ' +
          'clients: 8 MiB served them without an allocation failure, 7 MiB rode out failing allocations, 6 MiB and less failed; 10 or more ' +
          'leave headroom. elfloader guests: 64 or more.',
      ),
  })
  .prefault({})
  .describe('Unikraft guests: the kraft runtime, and the qemu runtime with qemu.guest "unikraft"');

export const uproxyConfig = z.strictObject({
  $schema: z.string().optional(),
  name: fleetName,
  runtime: runtimeName.default('host'),
  restart: z
    .enum(['on-failure', 'no'])
    .default('on-failure')
    .describe(
      'Host and qemu runtimes: on-failure restarts a machine that crashed or was killed (a process that exited cleanly is not restarted; a VM whose guest powered off is), ' +
        'at once after a long run and with a backoff doubling from 200 ms to 30 s while it keeps failing, by an s6-supervise per machine that outlives uproxy (Debian package s6); ' +
        'no leaves it to the next up. kraft run has no restart policy for local machines',
    ),
  proxy,
  backends,
  network,
  qemu,
  unikraft,
});

/** uproxy.json after defaults were applied. */
export type UproxyConfig = z.infer<typeof uproxyConfig>;
/** How the proxy serves HTTPS when it does (proxy.tls.mode other than off). */
export type HttpsMode = Exclude<UproxyConfig['proxy']['tls']['mode'], 'off'>;
/** uproxy.json as written by a person (defaults may be left out). */
export type UproxyConfigInput = z.input<typeof uproxyConfig>;

/**
 * The ports of machines that each have their own address (the VM runtimes): as configured, 0
 * meaning the default, since no other program can hold a port on a machine's own address.
 */
export function machinePorts(config: UproxyConfig): { proxy: number; admin: number; backend: number } {
  return {
    proxy: config.proxy.port || DEFAULT_PORTS.proxy,
    admin: config.proxy.adminPort || DEFAULT_PORTS.admin,
    backend: config.backends.port || DEFAULT_PORTS.backend,
  };
}

export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(uproxyConfig, { io: 'input' }) as Record<string, unknown>;
}
