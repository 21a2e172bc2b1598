// Docker's multiplexed log format (containers without a TTY): frames of an 8-byte header
// [stream (1 stdout, 2 stderr), 0, 0, 0, size (uint32 big-endian)] followed by `size` bytes.
// LogDemuxer turns such a stream into the plain bytes, in order, across any chunk boundaries.
import { Transform, type TransformCallback } from 'node:stream';

export interface LogFrame {
  stream: 'stdout' | 'stderr';
  data: Buffer;
}

/** Parses as many whole frames as `buf` holds; returns them and the unparsed rest. Pure. */
export function parseFrames(buf: Buffer): { frames: LogFrame[]; rest: Buffer } {
  const frames: LogFrame[] = [];
  let off = 0;
  while (buf.length - off >= 8) {
    const kind = buf[off];
    const size = buf.readUInt32BE(off + 4);
    if (buf.length - off - 8 < size) break;
    frames.push({ stream: kind === 2 ? 'stderr' : 'stdout', data: buf.subarray(off + 8, off + 8 + size) });
    off += 8 + size;
  }
  return { frames, rest: buf.subarray(off) };
}

export class LogDemuxer extends Transform {
  private pending: Buffer = Buffer.alloc(0);
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const { frames, rest } = parseFrames(this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk);
    this.pending = Buffer.from(rest);
    for (const f of frames) this.push(f.data);
    cb();
  }
  override _flush(cb: TransformCallback): void {
    cb();
  }
}
