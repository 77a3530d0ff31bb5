/** The fake fal upstream the e2e proxy talks to (playwright.config.ts starts both). Test-only values. */
export const FAKE_FAL_PORT = Number(process.env.FAKE_FAL_PORT ?? 4180);
export const FAKE_FAL_URL = `http://127.0.0.1:${FAKE_FAL_PORT}`;
/** A distinctive key, so a leak into any response, log or bundle is found by a plain search. */
export const FAL_E2E_KEY = 'e2e-fal-key-7f3a9c1d-never-in-the-browser';
