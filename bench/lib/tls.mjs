// What the TLS paths need: one ECDSA P-256 certificate per run (all three proxies serve it), the
// handshake load generator (bench/tls-client, compiled per run into the temp dir), and its run.
import { execa } from 'execa';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LOAD_CPU } from './processes.mjs';

export const TLS_CLIENT_SOURCE = resolve(import.meta.dirname, '..', 'tls-client', 'tls-client.c');
// The name the certificate is issued to; clients send it as SNI.
export const TLS_NAME = 'localhost';
// TLS 1.3 cipher suites for every proxy, in uproxy's order (AES-128-GCM first), so that all three
// pick the same one: OpenSSL's default would put AES-256-GCM first for HAProxy and nginx.
export const TLS13_CIPHERSUITES = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384';

// A self-signed ECDSA P-256 certificate for localhost / 127.0.0.1, valid 2 days, made fresh in
// `dir`. `chain` holds certificate and key in one PEM (uproxy's and HAProxy's form); every file
// holding the key is mode 0600.
export async function makeCertificate(dir) {
  const key = join(dir, 'tls-key.pem');
  const cert = join(dir, 'tls-cert.pem');
  const chain = join(dir, 'tls-chain.pem');
  await execa('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${TLS_NAME}`,
    '-addext', `subjectAltName=DNS:${TLS_NAME},IP:127.0.0.1`,
  ], { timeout: 30000 });
  chmodSync(key, 0o600); // openssl writes it 0600 already; the bench does not rely on that
  const certPem = readFileSync(cert, 'utf8');
  writeFileSync(chain, certPem + readFileSync(key, 'utf8'), { mode: 0o600 });
  const fingerprint = (await execa('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', cert])).stdout.split('=')[1].trim();
  return { key, cert, chain, certPem, fingerprint };
}

// Compiled on every run, like the floor relay; `undefined` and the compiler's message when it
// does not build (the handshake paths are then left out).
export async function buildTlsClient(dir) {
  const binary = join(dir, 'tls-client');
  const argv = ['-O2', '-Wall', '-Wextra', '-Werror', '-o', binary, TLS_CLIENT_SOURCE, '-lssl', '-lcrypto'];
  const result = await execa('cc', argv, { reject: false, timeout: 60000, all: true });
  if (result.exitCode === 0) return { ok: true, binary };
  const tail = (result.all ?? result.message ?? '').trim().split('\n').slice(-5).join('\n    ');
  return { ok: false, reason: `\`cc ${argv.join(' ')}\` failed (exit ${result.exitCode}):\n    ${tail}` };
}

// One bounded run of the handshake client on the load core: `mode` is 'new' (a full handshake
// per connection) or 'resume' (each connection offers its predecessor's session). Returns the
// same shape as wrk-report.lua's JSON, plus `resumed`, `protocol` and `group`.
export async function runTlsClient({ binary, port, conns, seconds, token, mode }) {
  const result = await execa('taskset', ['-c', LOAD_CPU, binary, String(port), String(conns), String(seconds), mode], {
    env: { BENCH_TOKEN: token },
    reject: false,
    timeout: (seconds + 20) * 1000,
  });
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"requests"'));
  if (result.exitCode !== 0 || !line) {
    throw new Error(`tls-client failed (exit ${result.exitCode}${result.timedOut ? ', timed out' : ''}): ${result.stderr || result.stdout}`.trim());
  }
  return JSON.parse(line);
}
