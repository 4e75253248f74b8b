/**
 * The controller's log: one logfmt line per event, in the proxy's form
 * (`ts=... level=info event=backend_added backend=api-1 ...`), so both read alike in
 * `kubectl logs` and one parser takes both. Nothing secret is ever passed in.
 */

export type LogLevel = 'info' | 'warn' | 'error';
export type LogFields = Readonly<Record<string, string | number | boolean | undefined>>;
export type Log = (level: LogLevel, event: string, fields?: LogFields) => void;

export function logfmtLine(level: LogLevel, event: string, fields: LogFields = {}, now = new Date()): string {
  const parts = [`ts=${now.toISOString()}`, `level=${level}`, `event=${event}`];
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) parts.push(`${key}=${logfmtValue(String(value))}`);
  }
  return parts.join(' ');
}

/** A log writing each line through `write` (without its newline). */
export function logTo(write: (line: string) => void): Log {
  return (level, event, fields) => write(logfmtLine(level, event, fields));
}

function logfmtValue(value: string): string {
  return value === '' || /[\s"=\\]/.test(value) ? JSON.stringify(value) : value;
}
