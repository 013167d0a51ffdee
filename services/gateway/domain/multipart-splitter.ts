// A multipart/form-data body split into its parts as its bytes arrive (RFC 7578, RFC 2046 §5.1):
// a video upload is streamed to disk part by part instead of being read whole into memory, as
// `Response.formData()` would. Pure: bytes in, part events out; no I/O of its own.
//
// Written here rather than taken from a library: the packages installed for this project have no
// streaming multipart parser (busboy and its kin are not among them), and undici's `formData()`
// buffers the whole body. The splitter handles exactly what form-data needs: a boundary
// delimiter, part headers (Content-Disposition name and filename, Content-Type), and the close
// delimiter; preamble and epilogue are ignored as RFC 2046 says.

/** A part's headers, as the splitter read them. */
export interface PartHeaders {
  /** Content-Disposition's name (the form field). */
  name: string;
  /** Content-Disposition's filename; undefined for a plain field. */
  filename: string | undefined;
  contentType: string | undefined;
}

export interface PartSink {
  /** A part begins. */
  start(headers: PartHeaders): void;
  /** Bytes of the current part, in order. The chunk may be a view of the splitter's buffer: copy or consume it now. */
  data(chunk: Uint8Array): void;
  /** The current part ended. */
  end(): void;
}

/** A body that breaks the multipart grammar; the caller answers malformed_multipart. */
export class MultipartError extends Error {}

/** Longest header block of one part accepted, in bytes: a few lines of Content-Disposition and Content-Type. */
export const PART_HEADER_BYTES_MAX = 16 * 1024;

const CRLF = Buffer.from("\r\n");
const HEADER_END = Buffer.from("\r\n\r\n");

type State = "preamble" | "after-delimiter" | "headers" | "body" | "done";

export class MultipartSplitter {
  readonly #delimiter: Buffer;
  #pending: Buffer;
  #state: State = "preamble";

  constructor(
    boundary: string,
    private readonly sink: PartSink,
  ) {
    if (boundary === "" || boundary.length > 70) throw new MultipartError("the multipart boundary must be 1 to 70 characters");
    this.#delimiter = Buffer.from(`\r\n--${boundary}`);
    // The first delimiter may open the body with no CRLF before it: one is supplied.
    this.#pending = Buffer.from(CRLF);
  }

  /** Whether the close delimiter has been read (whatever follows is epilogue). */
  get done(): boolean {
    return this.#state === "done";
  }

  push(chunk: Uint8Array): void {
    if (this.#state === "done") return;
    this.#pending = this.#pending.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([this.#pending, chunk]);
    while (this.#step()) {
      /* each step consumes what it can */
    }
  }

  /** The body ended: anything but a complete form is malformed. */
  end(): void {
    if (this.#state !== "done") throw new MultipartError("the body ended before the multipart close delimiter");
  }

  /** Advances by one grammar element; false when more bytes are needed. */
  #step(): boolean {
    switch (this.#state) {
      case "preamble": {
        const at = this.#pending.indexOf(this.#delimiter);
        if (at < 0) {
          this.#keepTail();
          return false;
        }
        this.#pending = this.#pending.subarray(at + this.#delimiter.length);
        this.#state = "after-delimiter";
        return true;
      }
      case "after-delimiter": {
        if (this.#pending.length < 2) return false;
        if (this.#pending[0] === 0x2d && this.#pending[1] === 0x2d) {
          this.#state = "done";
          this.#pending = Buffer.alloc(0);
          return false;
        }
        // Transport padding (spaces, tabs) may follow a delimiter before its CRLF.
        const lineEnd = this.#pending.indexOf(CRLF);
        if (lineEnd < 0) {
          if (this.#pending.length > 256) throw new MultipartError("a multipart delimiter line is not ended by CRLF");
          return false;
        }
        if (!/^[ \t]*$/.test(this.#pending.subarray(0, lineEnd).toString("latin1"))) throw new MultipartError("a multipart delimiter is followed by other text");
        this.#pending = this.#pending.subarray(lineEnd + 2);
        this.#state = "headers";
        return true;
      }
      case "headers": {
        // A part with no headers at all starts with the blank line directly.
        const blank = this.#pending.subarray(0, 2).equals(CRLF) ? -2 : this.#pending.indexOf(HEADER_END);
        if (blank === -1) {
          if (this.#pending.length > PART_HEADER_BYTES_MAX) throw new MultipartError(`a part's headers exceed ${PART_HEADER_BYTES_MAX} bytes (PART_HEADER_BYTES_MAX)`);
          return false;
        }
        const text = blank === -2 ? "" : this.#pending.subarray(0, blank).toString("utf8");
        this.#pending = this.#pending.subarray(blank === -2 ? 2 : blank + 4);
        this.sink.start(partHeadersOf(text));
        this.#state = "body";
        return true;
      }
      case "body": {
        const at = this.#pending.indexOf(this.#delimiter);
        if (at < 0) {
          // All but what could be the start of a delimiter split across chunks.
          const safe = this.#pending.length - (this.#delimiter.length - 1);
          if (safe > 0) {
            this.sink.data(this.#pending.subarray(0, safe));
            this.#pending = Buffer.from(this.#pending.subarray(safe));
          }
          return false;
        }
        if (at > 0) this.sink.data(this.#pending.subarray(0, at));
        this.sink.end();
        this.#pending = this.#pending.subarray(at + this.#delimiter.length);
        this.#state = "after-delimiter";
        return true;
      }
      case "done":
        return false;
    }
  }

  /** In the preamble only the last bytes can begin a delimiter. */
  #keepTail(): void {
    const keep = this.#delimiter.length - 1;
    if (this.#pending.length > keep) this.#pending = Buffer.from(this.#pending.subarray(this.#pending.length - keep));
  }
}

/** Content-Disposition's name and filename and the Content-Type, from a part's header block. */
export function partHeadersOf(text: string): PartHeaders {
  let disposition = "";
  let contentType: string | undefined;
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "content-disposition") disposition = value;
    else if (name === "content-type") contentType = value;
  }
  if (!/^form-data\b/i.test(disposition)) throw new MultipartError("a part has no Content-Disposition: form-data header");
  const name = parameterOf(disposition, "name");
  if (name === undefined) throw new MultipartError("a part's Content-Disposition has no name");
  return { name, filename: parameterOf(disposition, "filename"), contentType };
}

function parameterOf(header: string, parameter: string): string | undefined {
  const match = new RegExp(`;\\s*${parameter}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]*))`, "i").exec(header);
  if (!match) return undefined;
  return match[1] !== undefined ? match[1].replace(/\\(.)/g, "$1") : match[2];
}
