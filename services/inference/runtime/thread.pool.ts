import { Worker, type Transferable } from "node:worker_threads";

const tsxApi = import.meta.resolve("tsx/esm/api");

interface Task<Request, Response> {
  request: Request;
  transfer: Transferable[];
  resolve(response: Response): void;
  reject(error: unknown): void;
}

interface Slot<Request, Response> {
  worker: Worker;
  ready: Promise<unknown>;
  started: boolean;
  task?: Task<Request, Response>;
}

type Reply<Response> =
  | { kind: "ready"; info: unknown }
  | { kind: "result"; response: Response }
  | { kind: "error"; message: string; stack?: string };

/**
 * A fixed set of worker threads, one task at a time each, tasks beyond that wait in FIFO order.
 * Heavy synchronous work (onnxruntime's `session.run`, per-pixel filters) runs here so the
 * service's event loop keeps answering health checks, metrics and queue calls meanwhile.
 *
 * The worker script posts `{kind:"ready", info}` once set up, then answers each request with
 * `{kind:"result"}` or `{kind:"error"}`. A worker that dies fails its task and is replaced.
 */
/** How long `close` lets tasks already running in the workers finish before terminating them (ms). */
const CLOSE_RUNNING_WAIT_MS_MAX = 60_000;

export class ThreadPool<Request, Response> {
  private readonly slots: Slot<Request, Response>[] = [];
  private readonly waiting: Task<Request, Response>[] = [];
  private closed = false;
  /** Resolves with each worker's ready info once every worker is set up. */
  readonly ready: Promise<unknown[]>;

  constructor(
    private readonly script: URL,
    size: number,
    private readonly workerData: (index: number) => { data: unknown; transfer?: Transferable[] },
    private readonly onWorkerExit?: (error: Error) => void,
  ) {
    for (let index = 0; index < size; index++) this.slots.push(this.spawn(index));
    this.ready = Promise.all(this.slots.map((slot) => slot.ready));
    // A failed start is reported through `ready`; avoid an unhandled rejection meanwhile.
    this.ready.catch(() => {});
  }

  get size(): number {
    return this.slots.length;
  }

  get idle(): number {
    return this.slots.filter((slot) => slot.task === undefined).length - this.waiting.length;
  }

  run(request: Request, transfer: Transferable[] = []): Promise<Response> {
    if (this.closed) return Promise.reject(new Error("thread pool is closed"));
    return new Promise<Response>((resolve, reject) => {
      this.waiting.push({ request, transfer, resolve, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const task of this.waiting.splice(0)) task.reject(new Error("thread pool is closed"));
    // Terminating a worker inside a native call (onnxruntime's run) aborts the whole process
    // ("terminate called after throwing an instance of 'Napi::Error'"): tasks already running are
    // let finish first. A cancelled video leaves frames in the model this way.
    const deadline = Date.now() + CLOSE_RUNNING_WAIT_MS_MAX;
    while (this.slots.some((slot) => slot.task !== undefined) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }

  private spawn(index: number): Slot<Request, Response> {
    const { data, transfer } = this.workerData(index);
    // The scripts are TypeScript, and on Node 20 a worker does not inherit the parent's
    // `--import tsx` loader hooks; a small bootstrap loads the script through tsx's API.
    const bootstrap = `import(${JSON.stringify(tsxApi)}).then(({ tsImport }) => tsImport(${JSON.stringify(this.script.href)}, ${JSON.stringify(this.script.href)}))`;
    const worker = new Worker(bootstrap, { eval: true, workerData: data, transferList: transfer });
    const slot: Slot<Request, Response> = { worker, ready: Promise.resolve(), started: false };
    slot.ready = new Promise((resolveReady, rejectReady) => {
      worker.on("message", (reply: Reply<Response>) => {
        if (reply.kind === "ready") {
          slot.started = true;
          resolveReady(reply.info);
          return;
        }
        const task = slot.task;
        slot.task = undefined;
        if (task !== undefined) {
          if (reply.kind === "result") task.resolve(reply.response);
          else task.reject(Object.assign(new Error(reply.message), { stack: reply.stack ?? reply.message }));
        }
        this.dispatch();
      });
      worker.on("error", (error) => {
        rejectReady(error);
        slot.task?.reject(error);
        slot.task = undefined;
      });
      worker.on("exit", (code) => {
        if (this.closed) return;
        const error = new Error(`worker thread ${this.script.pathname} exited with code ${code}`);
        rejectReady(error);
        slot.task?.reject(error);
        slot.task = undefined;
        this.onWorkerExit?.(error);
        // A worker that never started (bad model, missing provider) would fail again at once.
        const position = this.slots.indexOf(slot);
        if (slot.started && position >= 0) {
          const replacement = this.spawn(index);
          this.slots[position] = replacement;
          replacement.ready.then(
            () => this.dispatch(),
            () => {},
          );
        }
      });
    });
    slot.ready.catch(() => {});
    return slot;
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.task !== undefined || this.waiting.length === 0) continue;
      const task = this.waiting.shift()!;
      slot.task = task;
      slot.worker.postMessage(task.request, task.transfer);
    }
  }
}

/** The worker side: wire `handle` to the parent port after `setup` finished. */
export async function serveThread<Request, Response>(
  port: import("node:worker_threads").MessagePort,
  setup: () => Promise<unknown>,
  handle: (request: Request) => Promise<{ response: Response; transfer?: Transferable[] }>,
): Promise<void> {
  const info = await setup();
  port.on("message", async (request: Request) => {
    try {
      const { response, transfer } = await handle(request);
      port.postMessage({ kind: "result", response }, transfer ?? []);
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      port.postMessage({ kind: "error", message: failure.message, stack: failure.stack });
    }
  });
  port.postMessage({ kind: "ready", info });
}
