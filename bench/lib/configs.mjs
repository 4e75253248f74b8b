// The configuration files of the backends and of the proxies under test. Every proxy does the
// same job: require X-Auth-Token, strip it, round-robin over three backends, and keep upstream
// connections alive.

// Sized for the 10,000 idle connection check plus headroom; the benchmark itself uses ≤ 256.
export const MAX_CLIENT_CONNECTIONS = 10100;
// HAProxy reserves two fds per connection (client + server side) and refuses to start when
// the hard fd limit (20,000 on this machine, not raisable; valgrind keeps a few) is below
// 2 x maxconn + listeners.
export const HAPROXY_MAXCONN = 9900;

// One nginx, one worker, three server blocks. `/` answers a 10-byte body; `/echo-token`
// echoes the X-Auth-Token it received, so the sanity check can prove a proxy strips it.
export function backendsNginxConf(dir, ports) {
  const servers = ports
    .map(
      (port, i) => `
    server {
      listen 127.0.0.1:${port} backlog=4096;
      location = /echo-token { return 200 "$http_x_auth_token"; }
      location / { return 200 "backend-${i + 1}\\n"; }
    }`,
    )
    .join('\n');
  return `${nginxPreamble(dir)}
http {
  ${nginxHttpBasics(dir)}
  default_type text/plain;
${servers}
}
`;
}

// With `tls` ({ cert, key }), the same server over TLS: the bench's certificate, the same TLS 1.3
// cipher order and groups as the other proxies, nginx's defaults otherwise (session tickets on,
// with keys of its own; no server-side session cache).
export function nginxProxyConf(dir, port, backendPorts, token, tls) {
  const upstreams = backendPorts.map((p) => `    server 127.0.0.1:${p};`).join('\n');
  const listen = tls
    ? `listen 127.0.0.1:${port} ssl backlog=4096;
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve X25519:prime256v1;
    ssl_prefer_server_ciphers on;
    ssl_conf_command Ciphersuites ${tls.ciphersuites};`
    : `listen 127.0.0.1:${port} backlog=4096;`;
  return `${nginxPreamble(dir)}
http {
  ${nginxHttpBasics(dir)}
  upstream backends {
${upstreams}
    # Large enough that no upstream connection is ever closed for lack of idle slots.
    keepalive 1024;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
  }
  server {
    ${listen}
    location / {
      if ($http_x_auth_token != "${token}") { return 401; }
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Auth-Token "";
    }
  }
}
`;
}

function nginxPreamble(dir) {
  return `daemon off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events {
  worker_connections ${MAX_CLIENT_CONNECTIONS + 2000};
  multi_accept on;
}`;
}

// Keep-alive without nginx's default of closing a client connection every 1000 requests,
// so that wrk's connections stay open like they do through HAProxy and uproxy.
function nginxHttpBasics(dir) {
  return `access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;`;
}

// With `tls` ({ chain }), the frontend speaks TLS with the bench's certificate, the same TLS 1.3
// cipher order and groups as the other proxies, and HAProxy's defaults otherwise (its session
// cache, OpenSSL's two TLS 1.3 tickets per full handshake).
export function haproxyConf(port, backendPorts, token, tls) {
  const servers = backendPorts.map((p, i) => `  server backend-${i + 1} 127.0.0.1:${p}`).join('\n');
  const globalTls = tls ? `  ssl-default-bind-ciphersuites ${tls.ciphersuites}\n  ssl-default-bind-options ssl-min-ver TLSv1.2\n` : '';
  const bind = tls ? ` ssl crt ${tls.chain} alpn http/1.1 curves X25519:P-256` : '';
  return `global
  nbthread 1
  maxconn ${HAPROXY_MAXCONN}
${globalTls}
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 30s
  timeout http-keep-alive 60s

frontend clients
  bind 127.0.0.1:${port} backlog 4096${bind}
  acl valid_token req.hdr(X-Auth-Token) -m str ${token}
  http-request deny deny_status 401 unless valid_token
  http-request del-header X-Auth-Token
  default_backend backends

backend backends
  balance roundrobin
  http-reuse always
${servers}
`;
}

export function uproxyArgs({ port, adminPort, backendPorts, tokenSha256, adminTokenSha256, extra = [] }) {
  return [
    '--listen', `127.0.0.1:${port}`,
    '--admin', `127.0.0.1:${adminPort}`,
    '--admin-token-sha256', adminTokenSha256,
    ...backendPorts.flatMap((p, i) => ['--backend', `backend-${i + 1}=127.0.0.1:${p}`]),
    '--token', `bench:${tokenSha256}`,
    '--algorithm', 'round-robin',
    '--max-connections', String(MAX_CLIENT_CONNECTIONS),
    ...extra,
  ];
}
