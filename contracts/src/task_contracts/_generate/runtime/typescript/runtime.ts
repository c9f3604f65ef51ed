// The runtime of the generated callers, written once by hand (task-contracts ships it and
// `task-contracts generate typescript` copies it): it speaks the wire format of docs/wire.md. A call
// is one LPUSH of a Celery protocol-v2 envelope to the contract's queue, with the contract_shape
// header; the worker publishes the record on this client's reply channel (task-client-<hex>), and a
// GET of celery-task-meta-<id> every half second covers workers that publish on the task's channel only.

import { randomBytes, randomUUID } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";

const RESULT_KEY_PREFIX = "celery-task-meta-";
const FALLBACK_INTERVAL_MS = 500;
// Every Redis command has this bound, so a Redis that is down or frozen is an error, not a hang.
const IO_TIMEOUT_MS = 1000;
const CANCEL_KEEP_SECONDS = 86400;
const FINISHED = new Set(["SUCCESS", "FAILURE", "REVOKED"]);

/** Root of the errors a generated caller rejects with. */
export class TaskError extends Error {
  constructor(message: string, readonly contract?: string, readonly taskId?: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The arguments break the contract. Rejected before anything is published. */
export class InvalidArguments extends TaskError {
  constructor(contract: string, readonly problems: readonly string[]) {
    super(`invalid arguments for ${contract}: ${problems.join("; ")}`, contract);
  }
}

/** The task ran, or the worker refused it, and failed: the worker-side exception's type and message. */
export class TaskFailed extends TaskError {
  constructor(
    contract: string,
    taskId: string,
    readonly remoteType: string,
    readonly remoteMessage: string,
    readonly remoteTraceback: string | null,
  ) {
    super(`${contract} failed on the worker: ${remoteType}: ${remoteMessage}`, contract, taskId);
  }
}

/** No worker serves this contract. */
export class UnknownTask extends TaskError {}

/** The worker holds another version of the contract and the difference breaks this call. */
export class ContractMismatch extends TaskError {}

/** No result within the bound. The task may still run: wait again with the handle. */
export class TaskTimeout extends TaskError {
  constructor(contract: string, taskId: string, readonly timeout: number) {
    super(`${contract} ${taskId}: no result within ${timeout} s (the task may still run)`, contract, taskId);
  }
}

/** The call was cancelled before it ran, or stopped while running. */
export class TaskCancelled extends TaskError {}

/** Redis could not be reached in time, or refused a command. `url` never holds a password. */
export class BrokerUnavailable extends TaskError {
  constructor(readonly url: string, reason: string) {
    super(`broker ${url} unavailable: ${reason}`);
  }
}

/** What the runtime needs to know of one contract; the generated client declares one per contract. */
export interface Contract {
  readonly name: string;
  readonly queue: string;
  /** Seconds. */
  readonly timeout: number;
  readonly shape: unknown;
  /** Whether a result's JSON is of the contract's result type. */
  readonly fits: (value: unknown) => boolean;
}

/** Per call: `timeout` (seconds) replaces the contract's bound. */
export interface CallOptions {
  readonly timeout?: number;
}

interface StoredRecord {
  readonly status?: string;
  readonly result?: unknown;
  readonly traceback?: string | null;
  readonly task_id?: string;
}

/** One published call: its id, its result, its cancellation. */
export class Handle<T> {
  constructor(
    readonly id: string,
    private readonly caller: Caller,
    private readonly contract: Contract,
    private readonly timeout: number | undefined,
  ) {}

  /** Wait for the outcome: at most `timeout` seconds, by default the call's or the contract's bound. */
  async result(timeout?: number): Promise<T> {
    const bound = timeout ?? this.timeout ?? this.contract.timeout;
    const deadline = Date.now() + bound * 1000;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new TaskTimeout(this.contract.name, this.id, bound);
      }
      const record = (await this.caller.hear(this.id, Math.min(left, FALLBACK_INTERVAL_MS))) ?? (await this.caller.read(this.id));
      if (record !== null && FINISHED.has(record.status ?? "")) {
        this.caller.forget(this.id);
        return outcome<T>(this.contract, this.id, record);
      }
    }
  }

  /**
   * Stop the call through the documented keys: "cancelled" (it had not started and never runs),
   * "terminated" (running, interruptible: the worker stops it), "running" (it finishes but never
   * runs again) or "finished" (nothing changed).
   */
  async cancel(): Promise<"cancelled" | "terminated" | "running" | "finished"> {
    return this.caller.cancel(this.id);
  }
}

function outcome<T>(declared: Contract, id: string, record: StoredRecord): T {
  const contract = declared.name;
  if (record.status === "SUCCESS") {
    if (!declared.fits(record.result)) {
      throw new ContractMismatch(
        `${contract}: the worker's result does not fit this client's contract: ${JSON.stringify(record.result)}`,
        contract,
        id,
      );
    }
    return record.result as T;
  }
  const failure = (typeof record.result === "object" && record.result !== null ? record.result : {}) as {
    exc_type?: string;
    exc_message?: unknown;
  };
  const raw = failure.exc_message;
  const message = Array.isArray(raw) ? raw.map(String).join(" ") : raw === undefined || raw === null ? "" : String(raw);
  if (record.status === "REVOKED") {
    throw new TaskCancelled(`${contract} ${id} was cancelled (${message})`, contract, id);
  }
  const type = failure.exc_type ?? String(record.status);
  if (type === "NotRegistered") {
    throw new UnknownTask(`no worker serves ${contract}: ${message}`, contract, id);
  }
  if (type === "ContractMismatch") {
    throw new ContractMismatch(`${contract}: ${message}`, contract, id);
  }
  throw new TaskFailed(contract, id, type, message, typeof record.traceback === "string" ? record.traceback : null);
}

// task_contracts.wire.CANCEL_SCRIPT, put here by the generator: one text for every caller.
const CANCEL_SCRIPT = `
@@CANCEL_SCRIPT@@
`;

/** The generated client's base: one Redis (broker and results) for commands, one for the reply channel. */
export class Caller {
  private readonly safeUrl: string;
  private readonly commands: Redis;
  private readonly subscriber: Redis;
  private readonly replyChannel = "task-client-" + randomBytes(16).toString("hex");
  private readonly heard = new Map<string, StoredRecord>();
  private readonly waiters = new Map<string, () => void>();
  private subscribed: Promise<void> | null = null;

  constructor(url: string, private readonly options: CallOptions = {}) {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    this.safeUrl = parsed.toString();
    const settings: RedisOptions = {
      lazyConnect: true,
      connectTimeout: IO_TIMEOUT_MS,
      commandTimeout: IO_TIMEOUT_MS,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    };
    this.commands = new Redis(url, settings);
    this.subscriber = new Redis(url, settings);
    for (const connection of [this.commands, this.subscriber]) {
      connection.on("error", () => {}); // surfaced as BrokerUnavailable by the command that meets it
    }
    this.subscriber.on("message", (_channel: string, message: string) => {
      let record: StoredRecord;
      try {
        record = JSON.parse(message) as StoredRecord;
      } catch {
        return;
      }
      if (typeof record.task_id === "string" && FINISHED.has(record.status ?? "")) {
        this.heard.set(record.task_id, record);
        this.waiters.get(record.task_id)?.();
      }
    });
  }

  /** Ends both connections; calls still waiting then time out. */
  async close(): Promise<void> {
    this.commands.disconnect();
    this.subscriber.disconnect();
  }

  /** Publish one call whose arguments the generated code has checked. */
  protected async submit<T>(contract: Contract, kwargs: object, options: CallOptions | undefined): Promise<Handle<T>> {
    const body = JSON.stringify([[], kwargs, { callbacks: null, errbacks: null, chain: null, chord: null }]);
    await this.listen();
    const id = randomUUID();
    const envelope = JSON.stringify({
      body: Buffer.from(body).toString("base64"),
      "content-encoding": "utf-8",
      "content-type": "application/json",
      headers: {
        lang: "js", task: contract.name, id, root_id: id, parent_id: null, group: null, retries: 0,
        eta: null, expires: null, timelimit: [null, null], contract_shape: contract.shape,
      },
      properties: {
        correlation_id: id, reply_to: this.replyChannel, delivery_mode: 2, priority: 0,
        delivery_info: { exchange: "", routing_key: contract.queue }, body_encoding: "base64",
        delivery_tag: randomUUID(),
      },
    });
    await this.command(async (redis) => redis.lpush(contract.queue, envelope));
    return new Handle<T>(id, this, contract, options?.timeout ?? this.options.timeout);
  }

  /** @internal The finished record heard for `id` within `ms`, or null. */
  hear(id: string, ms: number): Promise<StoredRecord | null> {
    const known = this.heard.get(id);
    if (known !== undefined) {
      return Promise.resolve(known);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        resolve(null);
      }, ms);
      this.waiters.set(id, () => {
        clearTimeout(timer);
        this.waiters.delete(id);
        resolve(this.heard.get(id) ?? null);
      });
    });
  }

  /** @internal The stored record of `id` (the GET fallback), or null. */
  async read(id: string): Promise<StoredRecord | null> {
    const stored = await this.command(async (redis) => redis.get(RESULT_KEY_PREFIX + id));
    try {
      return stored === null ? null : (JSON.parse(stored) as StoredRecord);
    } catch {
      return null;
    }
  }

  /** @internal */
  forget(id: string): void {
    this.heard.delete(id);
  }

  /** @internal */
  async cancel(id: string): Promise<"cancelled" | "terminated" | "running" | "finished"> {
    const record = JSON.stringify({
      status: "REVOKED",
      result: { exc_type: "TaskRevokedError", exc_message: ["cancelled"], exc_module: "celery.exceptions" },
      traceback: null,
      children: [],
      date_done: new Date().toISOString().replace("Z", "+00:00"),
      task_id: id,
    });
    const keys = [RESULT_KEY_PREFIX + id, "task-sdk-running-" + id, "task-sdk-revoked-" + id];
    const reply = (await this.command(async (redis) =>
      redis.eval(CANCEL_SCRIPT, 3, ...keys, "cancelled", CANCEL_KEEP_SECONDS, record, "0", ""),
    )) as [string, string];
    if (reply[0] !== "running") {
      return reply[0] as "cancelled" | "finished";
    }
    try {
      return (JSON.parse(reply[1]) as { interruptible?: boolean }).interruptible ? "terminated" : "running";
    } catch {
      return "running";
    }
  }

  /** Subscribe to the reply channel once (again after a lost connection), before any publish. */
  private async listen(): Promise<void> {
    if (this.subscriber.status !== "ready") {
      this.subscribed = null;
    }
    this.subscribed ??= (async () => {
      await connect(this.subscriber);
      await this.subscriber.subscribe(this.replyChannel);
    })();
    try {
      await this.subscribed;
    } catch (error) {
      this.subscribed = null;
      throw new BrokerUnavailable(this.safeUrl, String((error as Error).message ?? error));
    }
  }

  private async command<R>(run: (redis: Redis) => Promise<R>): Promise<R> {
    try {
      await connect(this.commands);
      return await run(this.commands);
    } catch (error) {
      throw new BrokerUnavailable(this.safeUrl, String((error as Error).message ?? error));
    }
  }
}

async function connect(redis: Redis): Promise<void> {
  if (redis.status === "ready") {
    return;
  }
  if (redis.status === "wait" || redis.status === "end" || redis.status === "close") {
    await redis.connect();
    return;
  }
  // Another call is connecting it now.
  await new Promise<void>((resolve, reject) => {
    redis.once("ready", resolve);
    redis.once("end", () => reject(new Error("the connection ended")));
  });
}

/** Helper of the generated checks. */
export function problem(problems: string[], path: string, rule: string, got: unknown): void {
  let shown: string;
  try {
    shown = JSON.stringify(got) ?? String(got);
  } catch {
    shown = String(got);
  }
  problems.push(`${path}: ${rule} (got ${shown})`);
}
