// Builds the shipped CLI into dist/: cli/main.ts and its dependencies as one ESM bundle, with
// every dynamic import() (a runtime, Ink/React for `status`, execa, zod's users) split into a
// chunk loaded only when it runs. Node then reads a few files instead of resolving and
// compiling hundreds of modules on each start. `npm run build` type-checks with tsc first;
// esbuild only strips types.
import { build } from 'esbuild';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');

const result = await build({
  absWorkingDir: root,
  entryPoints: ['cli/main.ts'],
  // Every chunk sits directly in dist/, so `new URL('..', import.meta.url)` (templates.ts,
  // main.ts reading package.json) is the package root from any of them.
  outdir: 'dist',
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // bin/uproxy turns source maps on under --debug, so its stack traces name cli/*.ts lines.
  sourcemap: true,
  // Ink imports it only when DEV=true (React DevTools); it is no dependency of ours.
  external: ['react-devtools-core'],
  // Bundled CommonJS packages (react, commander) call require() for Node built-ins, which an
  // ES module does not have.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
  // Written below, once the build succeeded: a failed build leaves the last good dist/.
  write: false,
});

// Chunks are content-hashed: the old dist/ goes, or chunks of earlier builds would pile up.
rmSync(dist, { recursive: true, force: true });
for (const file of result.outputFiles) {
  mkdirSync(dirname(file.path), { recursive: true });
  writeFileSync(file.path, file.contents);
}
