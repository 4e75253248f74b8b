import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { curlLine } from '../../cli/core/output.js';

describe('the curl line up and ps print', () => {
  it('reads the token from its file and trusts the project CA, named from where the command runs', () => {
    const here = process.cwd();
    expect(curlLine({ listen: '127.0.0.1:8443', tls: 'local-ca' }, here))
      .toBe('curl --cacert .uproxy/tls/ca.pem -H "X-Auth-Token: $(cat .uproxy/client-token)" https://localhost:8443/');
    // From a subdirectory of the project (commands find it by walking up).
    expect(curlLine({ listen: '172.44.0.2:8080', tls: 'local-ca' }, join(here, '..')))
      .toBe('curl --cacert ../.uproxy/tls/ca.pem -H "X-Auth-Token: $(cat ../.uproxy/client-token)" https://172.44.0.2:8080/');
    expect(curlLine({ listen: '0.0.0.0:443', tls: 'files' }, here)).toBe('curl -H "X-Auth-Token: $(cat .uproxy/client-token)" https://localhost:443/');
    expect(curlLine({ listen: '127.0.0.1:8080' }, here)).toBe('curl -H "X-Auth-Token: $(cat .uproxy/client-token)" http://127.0.0.1:8080/');
  });

  it('names an ACME fleet by its domain, which a public CA vouches for', () => {
    const here = process.cwd();
    expect(curlLine({ listen: '0.0.0.0:443', tls: 'acme', serverName: 'fleet.example.com' }, here)).toBe('curl -H "X-Auth-Token: $(cat .uproxy/client-token)" https://fleet.example.com/');
    expect(curlLine({ listen: '0.0.0.0:8443', tls: 'acme', serverName: 'fleet.example.com' }, here)).toBe('curl -H "X-Auth-Token: $(cat .uproxy/client-token)" https://fleet.example.com:8443/');
  });
});
