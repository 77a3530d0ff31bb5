/** CRC-32 (IEEE 802.3, as PNG chunks and ZIP members use it), with an incremental form for chunked input. */
let table: Uint32Array | undefined;

function crcTable(): Uint32Array {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  return table;
}

/** Continue a running CRC (start at 0xffffffff; finish with `(crc ^ 0xffffffff) >>> 0`). */
export function crc32Update(crc: number, bytes: Uint8Array): number {
  const t = crcTable();
  for (let i = 0; i < bytes.length; i++) crc = t[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return crc;
}

/** The CRC-32 of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  return (crc32Update(0xffffffff, bytes) ^ 0xffffffff) >>> 0;
}
