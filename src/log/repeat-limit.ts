// Repeated warnings are rate-limited: the same message (a backend down, a flood of bad requests) is written at
// most a few times per window, then counted, and one line says how many were left out. A flood of requests must
// not become a flood of log lines.

export interface RepeatLimit {
  /**
   * Whether a line with this key may be written now (when not, it is counted), and how many lines of the key's
   * previous window were left out, to be reported first.
   */
  admit(key: string, level?: number): { write: boolean; suppressed: number };
  /** The keys whose window has ended with lines left out, how many and at what level; they are forgotten. */
  due(): { key: string; suppressed: number; level: number }[];
}

interface Window {
  start: number;
  written: number;
  suppressed: number;
  /** The highest level of the key's lines in this window. */
  level: number;
}

export function createRepeatLimit(options: {
  windowMs: number;
  perWindow: number;
  /** Distinct keys remembered at most (the oldest are forgotten first). */
  maxKeys?: number;
  now?: () => number;
}): RepeatLimit {
  const now = options.now ?? Date.now;
  const maxKeys = options.maxKeys ?? 1000;
  const windows = new Map<string, Window>();
  return {
    admit(key, level = 0) {
      const at = now();
      let window = windows.get(key);
      let suppressed = 0;
      if (!window || at - window.start >= options.windowMs) {
        suppressed = window?.suppressed ?? 0;
        windows.delete(key);
        if (windows.size >= maxKeys) windows.delete(windows.keys().next().value!);
        window = { start: at, written: 0, suppressed: 0, level };
        windows.set(key, window);
      }
      window.level = Math.max(window.level, level);
      if (window.written < options.perWindow) {
        window.written++;
        return { write: true, suppressed };
      }
      window.suppressed++;
      return { write: false, suppressed };
    },
    due() {
      const at = now();
      const out: { key: string; suppressed: number; level: number }[] = [];
      for (const [key, window] of windows) {
        if (at - window.start < options.windowMs) continue;
        if (window.suppressed > 0) out.push({ key, suppressed: window.suppressed, level: window.level });
        windows.delete(key);
      }
      return out;
    },
  };
}
