// The generated TypeScript caller against real workers (tests/callers/test_typescript.py compiles
// this with tsc --strict beside the generated files and runs it with node --test).
import { test } from "node:test";
import { strict as assert } from "node:assert";
import {
  BrokerUnavailable,
  Client,
  ContractMismatch,
  InvalidArguments,
  TaskCancelled,
  TaskFailed,
  TaskTimeout,
  UnknownTask,
  type Stats,
} from "../generated/index";

const clients: Client[] = [];

function client(env: string, timeout?: number): Client {
  const made = new Client(process.env[env] ?? "", timeout === undefined ? {} : { timeout });
  clients.push(made);
  return made;
}

test.after(async () => {
  await Promise.all(clients.map(async (made) => made.close()));
});

test("add(4, 7) is 11", async () => {
  assert.equal(await client("CALLERS_MAIN_URL").mathAdd(4, 7), 11);
});

test("mul by named arguments", async () => {
  assert.equal(await client("CALLERS_MAIN_URL").mathMulWith({ y: 7, x: 6 }), 42);
});

test("stats is typed", async () => {
  const stats: Stats = await client("CALLERS_MAIN_URL").mathStats([1, 2, 3.5]);
  assert.equal(stats.count, 3);
  assert.equal(stats.total, 6.5);
});

test("models, optionals and defaults", async () => {
  const caller = client("CALLERS_MAIN_URL");
  const got = await caller.callersDescribeWith({
    count: 2, unit: "cm", tag: "ab", points: [{ x: 1, y: 2, label: "p" }, { x: 3, y: 4 }], flags: { on: true }, loud: true,
  });
  assert.equal(got.text, "2 CM AB 2 POINTS");
  assert.equal(got.scale, null);
  assert.equal(got.points[0].label, "p");
  assert.equal(got.points[1].label, null);
  assert.deepEqual(got.flags, { on: true });
  assert.equal((await caller.callersDescribe(0, "in", "x", [], {})).text, "0 in x 0 points");
});

test("an invalid call publishes nothing", async () => {
  for (const env of ["CALLERS_QUIET_URL", "CALLERS_DOWN_URL"]) {
    const bad = { count: 101.5, unit: "mm", tag: "AB", points: [{ x: Infinity, y: 0 }], flags: {} };
    await assert.rejects(client(env).callersDescribeWith(bad as never), (error: unknown) => {
      if (!(error instanceof InvalidArguments)) {
        return false;
      }
      const text = error.problems.join("\n");
      for (const part of ["count: must be an integer", "count: must be <= 100", "unit: must be one of", "tag: must match", "points[0].x: must be a finite number"]) {
        assert.ok(text.includes(part), `${part} missing from ${text}`);
      }
      return true;
    });
  }
});

test("div(1, 0) names ZeroDivisionError", async () => {
  await assert.rejects(client("CALLERS_MAIN_URL").mathDiv(1, 0), (error: unknown) => {
    if (!(error instanceof TaskFailed)) {
      return false;
    }
    assert.equal(error.remoteType, "ZeroDivisionError");
    return true;
  });
});

test("an unserved name is UnknownTask", async () => {
  await assert.rejects(client("CALLERS_MAIN_URL").callersUnserved(1), UnknownTask);
});

test("with no worker, TaskTimeout within the bound", async () => {
  let start = Date.now();
  await assert.rejects(client("CALLERS_MAIN_URL").callersIdle(1), TaskTimeout); // its bound is 1 s
  let elapsed = Date.now() - start;
  assert.ok(elapsed >= 900 && elapsed < 2000, `${elapsed} ms`);
  start = Date.now();
  await assert.rejects(client("CALLERS_QUIET_URL").mathAdd(1, 2, { timeout: 0.3 }), TaskTimeout); // overridden
  elapsed = Date.now() - start;
  assert.ok(elapsed < 1300, `${elapsed} ms`);
});

test("with Redis down, BrokerUnavailable", async () => {
  const start = Date.now();
  await assert.rejects(client("CALLERS_DOWN_URL").mathAdd(1, 2), BrokerUnavailable);
  assert.ok(Date.now() - start < 2500);
});

test("an evolved worker answers the older caller", async () => {
  assert.equal(await client("CALLERS_EVOLVED_URL").mathAdd(4, 7), 111); // the worker's add gained z = 100
});

test("breaking changes are ContractMismatch", async () => {
  const caller = client("CALLERS_EVOLVED_URL");
  await assert.rejects(caller.mathMul(6, 7), ContractMismatch); // the worker requires z
  await assert.rejects(caller.mathStats([1]), ContractMismatch); // its result has no total
});

test("cancel before start", async () => {
  const handle = await client("CALLERS_MAIN_URL").submitCallersIdle({ x: 1 });
  assert.equal(await handle.cancel(), "cancelled");
  await assert.rejects(handle.result(), TaskCancelled);
});
