/** Packs the app offers to install. URLs are relative to the page (the test pack ships inside the app). */
export interface CatalogEntry {
  id: string;
  name: string;
  url: string;
  note: string;
}

export const CATALOG: readonly CatalogEntry[] = [
  {
    id: 'flux-test-tiny',
    name: 'Test pack (tiny random weights)',
    url: './packs/flux-test-tiny/',
    note: 'Ships with the app and works offline. It has the real FLUX.1 [schnell] structure but random weights: it makes abstract patterns, not pictures.',
  },
];
