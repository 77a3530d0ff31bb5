/**
 * Prompt recall: the last prompts used on this device (newest first, no duplicates), kept in localStorage, and
 * Alt+↑/↓ in the prompt box to step through them, like a shell's history.
 */
const KEY = 'flux-webgpu:prompts';
export const MAX_RECALLED_PROMPTS = 30;

export interface StringStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export class PromptRecall {
  private cursor = -1;

  constructor(private readonly store: StringStore | null) {}

  list(): string[] {
    try {
      const v = JSON.parse(this.store?.getItem(KEY) ?? '[]') as unknown;
      return Array.isArray(v) ? v.filter((p): p is string => typeof p === 'string') : [];
    } catch {
      return []; // a damaged entry is dropped, never fatal
    }
  }

  /** Remember a prompt that was just used; resets the Alt+↑/↓ position. */
  add(prompt: string): void {
    this.cursor = -1;
    const p = prompt.trim();
    if (!p) return;
    const next = [p, ...this.list().filter((x) => x !== p)].slice(0, MAX_RECALLED_PROMPTS);
    try {
      this.store?.setItem(KEY, JSON.stringify(next));
    } catch {
      // storage full or blocked: recall is a convenience, the generation already ran
    }
  }

  /** The older (+1) or newer (−1) prompt from the current position, or null past either end. */
  step(direction: 1 | -1): string | null {
    const all = this.list();
    const next = this.cursor + direction;
    if (next < 0 || next >= all.length) return null;
    this.cursor = next;
    return all[next]!;
  }
}
