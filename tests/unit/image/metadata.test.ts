/** Parameters embedded in PNG/JPEG files read back (our readers and independent decoders), pixels untouched. */
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { addJpegText, addPngText, parametersText, readJpegText, readPngText, withGenerationParameters, type GenerationParameters } from '../../../src/image/metadata.js';
import { encodePng } from '../../../src/image/png.js';

const rgba = Uint8Array.from({ length: 4 * 6 * 4 }, (_, i) => (i * 53) & 0xff);
const png = encodePng(rgba, 6, 4);
const jpg = new Uint8Array(jpeg.encode({ data: Buffer.from(rgba), width: 6, height: 4 }, 90).data);
const params: GenerationParameters = {
  prompt: 'a lighthouse at dusk, "quoted" — ünïcödé ☕',
  endpoint: 'fal-ai/flux/schnell',
  seed: 42,
  width: 512,
  height: 384,
  steps: 4,
  target: 'local',
  input: { prompt: 'a lighthouse at dusk, "quoted" — ünïcödé ☕', seed: 42, image_size: { width: 512, height: 384 }, num_inference_steps: 4 },
};

describe('PNG text chunks', () => {
  it('parameters and fal_input read back; the pixels decode unchanged (pngjs)', () => {
    const out = withGenerationParameters(png, 'image/png', params);
    const text = readPngText(out);
    expect(text.parameters).toBe(parametersText(params));
    expect(text.parameters).toBe('a lighthouse at dusk, "quoted" — ünïcödé ☕\nSteps: 4, Sampler: Euler (flow matching), Seed: 42, Size: 512x384, Model: fal-ai/flux/schnell, Ran: flux-webgpu (this device)');
    expect(JSON.parse(text.fal_input!)).toEqual(params.input);
    const decoded = PNG.sync.read(Buffer.from(out));
    const original = PNG.sync.read(Buffer.from(png));
    expect(Buffer.compare(decoded.data, original.data)).toBe(0);
  });

  it('Latin-1 text goes in tEXt, other text in iTXt', () => {
    const ascii = addPngText(png, { parameters: 'plain' });
    const uni = addPngText(png, { parameters: 'snow ❄' });
    expect(Buffer.from(ascii).includes(Buffer.from('tEXtparameters'))).toBe(true);
    expect(Buffer.from(uni).includes(Buffer.from('iTXtparameters'))).toBe(true);
    expect(readPngText(uni).parameters).toBe('snow ❄');
  });

  it('a damaged chunk fails its CRC; a non-PNG is refused', () => {
    const out = addPngText(png, { parameters: 'abc' });
    const i = Buffer.from(out).indexOf(Buffer.from('abc'));
    out[i] = 0x78;
    expect(() => readPngText(out)).toThrow(/tEXt chunk at byte \d+ fails its CRC/);
    expect(() => addPngText(jpg, { a: 'b' })).toThrow(/not a PNG/);
  });
});

describe('JPEG COM and Exif UserComment', () => {
  it('both read back; the image still decodes to the same pixels (jpeg-js)', () => {
    const out = withGenerationParameters(jpg, 'image/jpeg', params);
    expect(readJpegText(out)).toEqual({ comment: parametersText(params), userComment: parametersText(params) });
    const a = jpeg.decode(out, { useTArray: true });
    const b = jpeg.decode(jpg, { useTArray: true });
    expect([a.width, a.height]).toEqual([6, 4]);
    expect(Buffer.compare(Buffer.from(a.data), Buffer.from(b.data))).toBe(0);
  });

  it('text longer than one segment is split over COM segments, not cut', () => {
    const long = 'x'.repeat(70_000) + ' end';
    const out = addJpegText(jpg, long);
    const r = readJpegText(out);
    expect(r.comment).toBe(long);
    expect(r.userComment).toBeNull(); // UTF-16 of 70 kB does not fit one APP1 segment
    expect(jpeg.decode(out).width).toBe(6);
  });

  it('refuses other formats', () => {
    expect(() => addJpegText(png, 'x')).toThrow(/not a JPEG/);
    expect(() => withGenerationParameters(png, 'image/webp', params)).toThrow(/cannot embed parameters in image\/webp/);
  });
});
