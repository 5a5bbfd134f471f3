/** UTF-8 between strings and bytes, without Node's Buffer (the checkpoint layer also runs in browsers). */
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { ignoreBOM: true }); // a BOM stays, as Buffer keeps it: JSON.parse then refuses it

export function utf8Bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

export function utf8Text(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
