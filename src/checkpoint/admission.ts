/** Admission: how many saves, and how many bytes of snapshots, may be in flight at once, and what a save does
 * when that is reached (wait for room, or be skipped). */
export interface AdmissionLimits {
  maxInflight: number;
  maxInflightBytes: number;
}

export class Admission {
  private count = 0;
  private bytes = 0;
  private peak = 0;
  private waiters: (() => void)[] = [];

  constructor(private readonly limits: AdmissionLimits) {}

  /** A save larger than the byte budget still runs, alone, rather than never. */
  hasRoom(bytes: number): boolean {
    if (this.count >= this.limits.maxInflight) return false;
    return this.count === 0 || this.bytes + bytes <= this.limits.maxInflightBytes;
  }

  /** Waits until there is room; returns the ms waited. */
  async wait(bytes: number): Promise<number> {
    const t0 = performance.now();
    while (!this.hasRoom(bytes)) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return performance.now() - t0;
  }

  enter(bytes: number): void {
    this.count++;
    this.bytes += bytes;
    this.peak = Math.max(this.peak, this.bytes);
  }

  leave(bytes: number): void {
    this.count--;
    this.bytes -= bytes;
    const ready = this.waiters;
    this.waiters = [];
    for (const wake of ready) wake();
  }

  get inflight(): number {
    return this.count;
  }
  get inflightBytes(): number {
    return this.bytes;
  }
  get peakInflightBytes(): number {
    return this.peak;
  }
}
