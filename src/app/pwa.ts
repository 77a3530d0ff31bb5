/**
 * Service worker registration (vite-plugin-pwa). The first visit precaches the app; a new version waits until the
 * user reloads, so a running generation is never cut off. Packs and history are in IndexedDB, which updates never
 * touch.
 */
/// <reference types="vite-plugin-pwa/client" />
import { registerSW } from 'virtual:pwa-register';

export interface PwaEvents {
  /** The app is cached: it will start without a network from now on. */
  offlineReady(): void;
  /** A new version is ready; call `update()` to reload into it. */
  needRefresh(update: () => Promise<void>): void;
}

export function registerServiceWorker(events: PwaEvents): void {
  if (!('serviceWorker' in navigator)) return;
  const update = registerSW({
    onOfflineReady: () => events.offlineReady(),
    onNeedRefresh: () => events.needRefresh(() => update(true)),
    onRegisterError: (e: unknown) => console.warn('service worker registration failed:', e),
  });
}
