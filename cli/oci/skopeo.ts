/**
 * How `uproxy push` uses skopeo, as plain data: where an image goes under `--registry`, the
 * `skopeo copy` command line, and what a failed copy means for the user. skopeo copies the
 * layout as it is (`--preserve-digests`: without it, it would compress the uncompressed layer
 * on the way to the registry and the pushed image would have another digest than the built
 * one). Credentials are skopeo's own business (`skopeo login`, REGISTRY_AUTH_FILE): they are
 * never on a command line uproxy runs.
 */
import { commandLine, renderOptions, type CommandLine } from '../fleet/argv.js';
import { REF_NAME } from './image.js';

export const SKOPEO = 'skopeo';

/** A registry host (a name or IPv4 address, with an optional port), then optional lowercase path components. */
const REGISTRY = /^(?<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d{1,5})?)(?<path>(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*)$/;

export interface Registry {
  /** `HOST[:PORT]`. */
  host: string;
  /** `HOST[:PORT]/REPO...`, what image names are appended to. */
  prefix: string;
}

/** `--registry HOST[:PORT][/REPO...]`, checked as a Docker reference's repository part. */
export function parseRegistry(value: string): Registry | null {
  const trimmed = value.replace(/\/+$/, '');
  const match = REGISTRY.exec(trimmed);
  return match?.groups === undefined ? null : { host: match.groups.host!, prefix: trimmed };
}

export interface PushCommand {
  /** The layout directory (`.uproxy/oci/<app>`). */
  layout: string;
  /** `HOST/REPO/<name>`, without a tag. */
  repository: string;
  /** Plain HTTP, or HTTPS without verifying the registry's certificate. */
  insecure: boolean;
  /** Where skopeo writes the digest of the manifest it pushed. */
  digestFile: string;
}

export function skopeoPushCommand(push: PushCommand): CommandLine {
  return commandLine(
    SKOPEO,
    ['copy'],
    renderOptions({ 'preserve-digests': true, digestfile: push.digestFile }, '--'),
    // A boolean flag takes `false` only joined to it: `--dest-tls-verify false` would leave it on.
    push.insecure ? ['--dest-tls-verify=false'] : [],
    [`oci:${push.layout}:${REF_NAME}`, `docker://${push.repository}:${REF_NAME}`],
  );
}

/** What to tell the user when `skopeo copy` to `registry` failed with this output. */
export function pushFailure(output: string, registry: Registry, insecure: boolean): string {
  const { host } = registry;
  if (/server gave HTTP response to HTTPS client/i.test(output)) {
    return `the registry ${host} speaks plain HTTP, not HTTPS: if that is meant (a registry on this host or a test network), pass --insecure`;
  }
  if (/unauthorized|authentication required|denied|no basic auth credentials|401 Unauthorized/i.test(output)) {
    return `the registry ${host} wants credentials uproxy does not take on its command line: log in once with \`skopeo login${insecure ? ' --tls-verify=false' : ''} ${host}\` ` +
      '(or point REGISTRY_AUTH_FILE at a containers auth.json), then push again';
  }
  if (/x509:|certificate/i.test(output) && !insecure) {
    return `the registry ${host}'s TLS certificate is not trusted here: put its CA in /etc/containers/certs.d/${host}/ca.crt, or pass --insecure for a test registry`;
  }
  if (/connection refused|no such host|i\/o timeout|network is unreachable|no route to host|connection reset|dial tcp|TLS handshake timeout/i.test(output)) {
    return `cannot reach the registry ${host}: check the address and port in --registry and that the registry runs`;
  }
  return `skopeo could not push to ${host}`;
}
