/** The runtimes uproxy knows, kept apart from the schema so commands can list them without loading zod. */
export const RUNTIMES = ['host', 'qemu', 'kraft'] as const;
export type RuntimeName = (typeof RUNTIMES)[number];
