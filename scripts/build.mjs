// Builds the shipped CLI into dist/: cli/main.ts and its dependencies as one ESM bundle, with
// every dynamic import() (a runtime, Ink/React for `status`, undici, zod's users) split into a
// chunk loaded only when it runs. Node then reads a few files instead of resolving and
// compiling hundreds of modules on each start. `npm run build` type-checks with tsc first;
// esbuild only strips types.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

// Chunks are content-hashed: without this, chunks of an earlier build would pile up.
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });

await build({
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
});
