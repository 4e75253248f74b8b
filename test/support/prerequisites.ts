/**
 * Tests that need root or QEMU skip on a developer machine without them, but in CI (`CI` set,
 * as .ci/run does) a missing prerequisite fails the run: a green CI must mean they ran.
 * Returns the reason to skip (undefined: run the tests); throws in CI instead of skipping.
 */
export function skipUnlessCi(missing: string | undefined): string | undefined {
  if (missing !== undefined && process.env.CI) {
    throw new Error(`CI is set, so this test file must run, but it ${missing}. Fix the CI machine (run .ci/run as root).`);
  }
  return missing;
}
