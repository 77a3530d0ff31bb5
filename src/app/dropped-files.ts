/**
 * Files of a folder dropped on the page, with their paths. `DataTransferItem.webkitGetAsEntry()` must be called
 * during the drop event (the items are emptied afterwards), so `dropEntries` runs synchronously in the handler
 * and `walkEntries` reads the directories afterwards.
 */
import type { LocalPackFile } from '../storage/file-installer.js';

/** The dropped items as file-system entries; loose Files where the browser gives no entries. */
export function dropEntries(dt: DataTransfer): { entries: FileSystemEntry[]; files: File[] } {
  const entries: FileSystemEntry[] = [];
  for (const item of Array.from(dt.items)) {
    if (item.kind !== 'file') continue;
    const entry = item.webkitGetAsEntry?.();
    if (entry) entries.push(entry);
  }
  return { entries, files: entries.length ? [] : Array.from(dt.files) };
}

/** Every file under the entries, with its path from the dropped item ("pack/transformer/model.onnx"). */
export async function walkEntries(entries: readonly FileSystemEntry[]): Promise<LocalPackFile[]> {
  const out: LocalPackFile[] = [];
  const walk = async (entry: FileSystemEntry): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
      out.push({ path: entry.fullPath.replace(/^\/+/, ''), file });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      // readEntries returns at most 100 entries per call (Chromium): read until it returns none.
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
        if (batch.length === 0) break;
        for (const e of batch) await walk(e);
      }
    }
  };
  for (const e of entries) await walk(e);
  return out;
}
