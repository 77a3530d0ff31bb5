/**
 * The capacity decision the UI takes before downloading a pack (its manifest against this GPU's features, limits and
 * the user's memory cap): the same pure functions the worker uses at load, offered to the app through the client
 * layer (tests/unit/architecture.test.ts).
 */
export { checkManifestForDevice, decideCapacity, packNeeds, type CapacityDecision, type DeviceFacts } from '../runtime/capacity.js';
