import type { Command } from 'commander';
import { UserError } from '../errors.js';
import { projectDir, runtime } from './options.js';

export function register(program: Command): void {
  program
    .command('build')
    .description("Package each app of the fleet (proxy, backend) as an OCI image in .uproxy/oci/<app>/, built as `up` builds it for the runtime: a static binary for host and qemu microvm guests, a Unikraft kernel with urunc's annotations for kraft and qemu unikraft guests")
    .option('--oci', 'write OCI image layouts (the one output build makes)', false)
    .option('--runtime <runtime>', "build for host, qemu or kraft (default: runtime in uproxy.json)", runtime)
    .option('--verbose', 'show build output', false)
    .addHelpText('after', '\nExamples:\n  $ uproxy build --oci\n  $ uproxy build --oci --runtime kraft\n  $ uproxy build --oci && uproxy push --registry 127.0.0.1:5000/uproxy --insecure')
    .action(async (options: { oci: boolean; runtime?: 'host' | 'qemu' | 'kraft'; verbose: boolean }, command: Command) => {
      if (!options.oci) throw new UserError('uproxy build makes OCI images: run `uproxy build --oci` (`uproxy up` builds what it runs by itself)');
      const { buildImages } = await import('../core/oci.js');
      const { createProgress } = await import('../progress.js');
      const progress = await createProgress({ verbose: options.verbose });
      try {
        const images = await buildImages({ dir: projectDir(command), runtime: options.runtime }, progress);
        const width = Math.max(...images.map((image) => image.layout.length));
        for (const image of images) process.stdout.write(`${image.layout.padEnd(width)}  ${image.digest}  (${image.kind})\n`);
      } finally {
        await progress.close();
      }
    });
}
