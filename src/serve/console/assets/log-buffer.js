// One execution's log lines by sequence: deduplicated, with the contiguous prefix the page holds
// (`upTo`), and the gaps a reconnect or a late message left. Pure: the execution view renders it.

export class LogBuffer {
  constructor() {
    this.entries = new Map(); // sequence -> entry
    this.holes = new Set(); // sequences the server did not return when asked
    this.upTo = 0; // every sequence 1..upTo is an entry or a hole
    this.maxSeen = 0;
  }

  /** Adds lines; returns those that are new or replace a truncated copy, in sequence order. */
  add(lines) {
    const changed = [];
    for (const line of lines) {
      const sequence = Number(line.sequence);
      if (!Number.isInteger(sequence) || sequence < 1) continue;
      const existing = this.entries.get(sequence);
      const better = !existing || (existing.truncated && !line.truncated);
      if (!better) continue;
      this.entries.set(sequence, line);
      this.holes.delete(sequence);
      this.maxSeen = Math.max(this.maxSeen, sequence);
      changed.push(line);
    }
    this.advance();
    return changed.sort((a, b) => a.sequence - b.sequence);
  }

  advance() {
    while (this.entries.has(this.upTo + 1) || this.holes.has(this.upTo + 1)) this.upTo++;
  }

  /** Some line after `upTo` is held, so some before it is missing. */
  hasGap() {
    return this.maxSeen > this.upTo;
  }

  /** After the API answered up to `last`: what it did not return up to there is not coming. */
  markHolesUpTo(last) {
    const added = [];
    for (let s = this.upTo + 1; s <= last; s++) {
      if (!this.entries.has(s) && !this.holes.has(s)) {
        this.holes.add(s);
        added.push(s);
      }
    }
    this.maxSeen = Math.max(this.maxSeen, last);
    this.advance();
    return added;
  }

  get size() {
    return this.entries.size;
  }
}
