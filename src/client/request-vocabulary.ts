/**
 * The request vocabulary the UI shares with the client: fal's endpoint ids and schemas and the image-size presets.
 * The app imports it from here, so it depends on the client layer only (tests/unit/architecture.test.ts).
 */
export { IMAGE_SIZE_PRESETS, isImageSizePreset, type ImageSize, type ImageSizePreset } from '../pipeline/image-size.js';
export { ENDPOINT_SCHEMAS, isFluxEndpoint, type FluxEndpointId, type FluxRemoteInput } from '../remote/endpoints.js';
