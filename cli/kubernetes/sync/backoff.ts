/** Exponential backoff: the first retry after `firstMs`, doubling up to `maxMs`, until reset by a success. */
export class Backoff {
  private delayMs = 0;

  constructor(
    private readonly firstMs: number,
    private readonly maxMs: number,
  ) {}

  /** The wait before the next attempt, after one more failure. */
  next(): number {
    this.delayMs = Math.min(this.maxMs, this.delayMs === 0 ? this.firstMs : this.delayMs * 2);
    return this.delayMs;
  }

  reset(): void {
    this.delayMs = 0;
  }
}
