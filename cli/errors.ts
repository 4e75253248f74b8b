/**
 * An error the user can fix: its message says what was wrong, where, and how to fix it.
 * The command line prints only the message (the stack only with --debug).
 */
export class UserError extends Error {
  override name = 'UserError';
  constructor(
    message: string,
    /** Extra lines shown under the message, such as the tail of a log. */
    readonly details: string[] = [],
  ) {
    super(message);
  }
}
