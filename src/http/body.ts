// Reads a request body up to a limit; a larger body is refused without buffering the rest.
import type { IncomingMessage } from 'node:http';
import { McplexError } from '../errors.js';

export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

function tooLarge(limit: number): McplexError {
  return new McplexError('BODY_TOO_LARGE', `request body exceeds the limit of ${limit} bytes`, { status: 413 });
}
