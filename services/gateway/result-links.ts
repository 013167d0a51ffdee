// The result URLs the gateway hands out and serves: `<public URL>/v1/results/<job id>?expires&signature`.
import { createResultUrlSigner, type ResultUrlSigner } from "../common/result-urls.ts";

export interface ResultLinksOptions {
  /** Signs the URLs; the orchestrator must share it (CUTLINE_RESULT_URL_KEY). */
  key: string;
  /** Base URL clients reach the gateway at (CUTLINE_PUBLIC_URL); unset: the URL the gateway listens on. */
  publicUrl?: string;
  /** How long a URL works, in seconds (RESULT_URL_TTL_SECONDS). @default 86400 s */
  ttlSeconds: number;
}

const UNSPECIFIED_HOSTS = new Set(["0.0.0.0", "[::]"]);

/**
 * Result URL signing with the public base URL known late: the server's own URL (the default)
 * exists only once it listens, after the gateway is built. Until `listeningAt` is told (or when
 * the server listens on every interface), the request's Host header stands in.
 */
export class ResultLinks {
  #listeningUrl: string | undefined;

  constructor(private readonly options: ResultLinksOptions) {}

  /** The URL the server listens on, the default base when CUTLINE_PUBLIC_URL is unset. */
  listeningAt(url: string): void {
    // Bound to every interface (0.0.0.0, ::): no client can reach that address, the Host it used can.
    if (UNSPECIFIED_HOSTS.has(new URL(url).hostname)) return;
    this.#listeningUrl = url;
  }

  signer(host: string | undefined): ResultUrlSigner {
    const publicUrl = this.options.publicUrl ?? this.#listeningUrl ?? `http://${host ?? "localhost"}`;
    return createResultUrlSigner({ key: this.options.key, publicUrl, ttlSeconds: this.options.ttlSeconds });
  }
}
