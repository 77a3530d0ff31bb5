/**
 * Pack storage for browser code (Window or Worker). The Node-only folder source is deliberately not
 * re-exported, so bundles never pull in node:fs: import it from './fs-pack-source.js'.
 */
export type { PackFileData, PackSource } from './pack-source.js';
export { readJsonFile, toBytes } from './pack-source.js';
export type { FileCheck } from './sha256.js';
export { Sha256Hasher, sha256Hex } from './sha256.js';
export type { FetchLike, HttpOptions } from './http-pack-source.js';
export { fetchManifest, openHttpPack, packFileUrl } from './http-pack-source.js';
export type { FileRecord, FileState, PackInfo, PackRecord, PackState, PackStoreOptions, VerifyProgress } from './indexeddb-pack-store.js';
export {
  DEFAULT_CHUNK_BYTES,
  defaultPackStore,
  deletePack,
  listPacks,
  openInstalledPack,
  PackStore,
  verifyInstalledPack,
} from './indexeddb-pack-store.js';
export type { InstallOptions, InstallProgress } from './pack-installer.js';
export { installPack } from './pack-installer.js';
