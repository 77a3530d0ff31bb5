/**
 * Standalone fake fal upstream, e.g. for Playwright's webServer:
 *   tsx tests/support/fake-fal/main.ts --port 4180 --key <key> [--host 127.0.0.1]
 * (or env FAKE_FAL_PORT / FAKE_FAL_KEY / FAKE_FAL_HOST). `GET /` answers `ok` for the readiness check.
 */
import { parseArgs } from 'node:util';
import { startFakeFal } from './server.js';

const { values } = parseArgs({
  options: { port: { type: 'string' }, key: { type: 'string' }, host: { type: 'string' } },
  strict: true,
});
const key = values.key ?? process.env.FAKE_FAL_KEY;
const port = Number(values.port ?? process.env.FAKE_FAL_PORT ?? 4180);
const host = values.host ?? process.env.FAKE_FAL_HOST ?? '127.0.0.1';
if (!key || !Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('usage: tsx tests/support/fake-fal/main.ts --port <port> --key <key> [--host <host>]  (or FAKE_FAL_PORT, FAKE_FAL_KEY, FAKE_FAL_HOST)');
  process.exit(2);
}

const fake = await startFakeFal({ key, port, host });
console.log(`fake fal listening on ${fake.url}`);

let closing = false;
const shutdown = () => {
  if (closing) return;
  closing = true;
  fake.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
