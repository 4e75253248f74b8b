import { UserError } from '../errors.js';

/**
 * Why an ACME attempt failed, in words that say what to fix: the CA's problem document (RFC
 * 8555 6.7) read by its type, with what uproxy knows of where the CA had to reach the proxy and
 * what the domains resolve to from here. Pure, so each case is tested directly.
 */

/** A problem document as the CA sent it; `retryAfter` is its Retry-After header. */
export interface AcmeProblem {
  type: string;
  detail: string;
  retryAfter?: string;
}

export interface FailureContext {
  directoryUrl: string;
  /** The last URL of the CA asked. */
  url: string;
  challenge: 'http-01' | 'tls-alpn-01';
  /** Where the CA validates: the config key, its ADDRESS:PORT on this host, and the port the CA connects to. */
  listener: { key: string; address: string; port: number };
  /** Each domain with the addresses it resolves to here (none: it does not resolve). */
  resolved: readonly { domain: string; addresses: readonly string[] }[];
}

export interface ExplainedFailure {
  message: string;
  details: string[];
  rateLimited: boolean;
  /** RFC 3339: not before then, the CA said. */
  retryAfter?: string;
}

const PREFIX = 'urn:ietf:params:acme:error:';

export function explainAcmeFailure(error: unknown, problem: AcmeProblem | null, ctx: FailureContext, now = Date.now()): ExplainedFailure {
  const message = (error as Error | undefined)?.message ?? String(error);
  if (error instanceof UserError) return { message: error.message, details: error.details, rateLimited: false };
  if ((error as Error | undefined)?.name === 'AdminApiError') {
    return { message: `the proxy did not take the challenge (${message}): is the fleet running? \`uproxy ps\``, details: [], rateLimited: false };
  }
  if (problem === null) {
    return { message: `lost the connection to the CA at ${ctx.url} (${message}); the proxy keeps its current certificate: try again with \`uproxy cert renew\``, details: [], rateLimited: false };
  }
  const kind = problem.type.startsWith(PREFIX) ? problem.type.slice(PREFIX.length) : problem.type;
  const detail = problem.detail || message;
  const resolution = ctx.resolved.map(({ domain, addresses }) => (addresses.length ? `${domain} resolves here to ${addresses.join(', ')}` : `${domain} does not resolve here`));
  const reach = `the CA connects to port ${ctx.listener.port} of each domain`;
  switch (kind) {
    case 'rateLimited': {
      const retryAfter = retryAfterTime(problem.retryAfter, now);
      const when = retryAfter === undefined ? 'the next renewal' : retryAfter;
      return {
        message: `the CA rate-limited this request: ${detail}. The proxy keeps serving its current certificate; uproxy asks again after ${when} (\`uproxy cert renew --force\` asks now)`,
        details: [],
        rateLimited: true,
        ...(retryAfter === undefined ? {} : { retryAfter }),
      };
    }
    case 'dns':
      return {
        message: `the CA could not look up a domain: ${detail}. Give each of proxy.tls.acme.domains an A record pointing at this host's public address`,
        details: resolution,
        rateLimited: false,
      };
    case 'connection':
    case 'tls':
      return {
        message:
          `the CA could not reach the proxy: ${detail}. ${capitalise(reach)} (${ctx.challenge}; ${ctx.listener.key} is ${ctx.listener.address}): ` +
          `point each domain's A record at this host and open port ${ctx.listener.port} to the internet (firewall, NAT port forward)`,
        details: resolution,
        rateLimited: false,
      };
    case 'unauthorized':
    case 'incorrectResponse':
      return {
        message: `the CA reached a server that did not give the answer uproxy handed the proxy: ${detail}. Another server may answer for the domain: point its A record at this host (${ctx.listener.key} ${ctx.listener.address})`,
        details: resolution,
        rateLimited: false,
      };
    case 'caa':
      return { message: `a CAA record of the domain forbids this CA: ${detail}. Add a CAA record that allows it, or remove the CAA records`, details: [], rateLimited: false };
    case 'rejectedIdentifier':
      return { message: `the CA will not issue for this name: ${detail}. Change proxy.tls.acme.domains`, details: [], rateLimited: false };
    case 'invalidContact':
    case 'unsupportedContact':
      return { message: `the CA refused the contact address: ${detail}. Change proxy.tls.acme.email`, details: [], rateLimited: false };
    default:
      return { message: `the CA refused (${kind}): ${detail}`, details: resolution, rateLimited: false };
  }
}

/** A Retry-After value (seconds, or an HTTP date) as an RFC 3339 time; undefined when absent or unreadable. */
export function retryAfterTime(header: string | undefined, now: number): string | undefined {
  if (header === undefined) return undefined;
  const seconds = /^\d+$/.test(header.trim()) ? Number(header.trim()) : NaN;
  const at = Number.isFinite(seconds) ? now + seconds * 1000 : Date.parse(header);
  return Number.isFinite(at) ? new Date(at).toISOString() : undefined;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
