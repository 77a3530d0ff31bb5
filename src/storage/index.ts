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
export type { FileRecord, FileState, FileValidator, PackInfo, PackRecord, PackSourceKind, PackState, PackStoreOptions, VerifyProgress } from './indexeddb-pack-store.js';
export {
  DEFAULT_CHUNK_BYTES,
  defaultPackStore,
  deletePack,
  listPacks,
  openInstalledPack,
  PackStore,
  verifyInstalledPack,
} from './indexeddb-pack-store.js';
export type { BaseInstallOptions, InstallProgress, InstallResult, InstallStats, RestartReason } from './install-core.js';
export type { InstallOptions } from './pack-installer.js';
export { installPack } from './pack-installer.js';
export type { FileInstallOptions, LocalPackFile, MatchedPack } from './file-installer.js';
export { installPackFromFiles, matchPackFiles } from './file-installer.js';
export type { StorageLike, StorageStatus } from './storage-status.js';
export { checkQuota, formatSize, isChromeReportedQuota, requestPersistence, storageStatus } from './storage-status.js';
