/** What the UI modules share: the clients and the history store, set once at start (main.ts). */
import type { FluxApiClient } from '../client/flux-api.js';
import type { FluxClient } from '../client/flux-client.js';
import type { HistoryStore } from '../history/history-store.js';

export interface AppContext {
  /** The local runtime (packs, GPU). */
  client: FluxClient;
  /** Routed generation (this device or fal). */
  api: FluxApiClient;
  /** Null when IndexedDB is unavailable (e.g. some private modes): results are then shown but not kept. */
  history: HistoryStore | null;
  /** Re-evaluate where the next request runs (after packs or GPU limits change). */
  refreshRoute(): Promise<void>;
}

export const app = {} as AppContext;
