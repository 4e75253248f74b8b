import type { Command } from 'commander';
import { projectDir } from './options.js';

export function register(program: Command): void {
  program
    .command('push')
    .description('Copy the OCI images `uproxy build --oci` made to a registry with skopeo, as <registry>/<fleet>-proxy and <fleet>-backend, digests unchanged; prints each as REFERENCE@DIGEST')
    .requiredOption('--registry <host/repo>', 'where the images go: HOST[:PORT][/REPO], e.g. ghcr.io/you or 127.0.0.1:5000/uproxy')
    .option('--insecure', 'the registry speaks plain HTTP or has a certificate not to verify (a local or test registry)', false)
    .option('--verbose', "show skopeo's output", false)
    .addHelpText('after', '\nCredentials: log in with `skopeo login HOST` (or set REGISTRY_AUTH_FILE); uproxy never takes them on its command line.\n\nExamples:\n  $ uproxy push --registry ghcr.io/you\n  $ uproxy push --registry 127.0.0.1:5000/uproxy --insecure')
    .action(async (options: { registry: string; insecure: boolean; verbose: boolean }, command: Command) => {
      const { pushImages } = await import('../core/oci.js');
      const { createProgress } = await import('../progress.js');
      const progress = await createProgress({ verbose: options.verbose });
      try {
        const pushed = await pushImages({ dir: projectDir(command), registry: options.registry, insecure: options.insecure }, progress);
        for (const image of pushed) process.stdout.write(`${image.reference}\n`);
      } finally {
        await progress.close();
      }
    });
}
