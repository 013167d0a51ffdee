import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ScratchArena } from "./scratch.arena.ts";

describe("ScratchArena", () => {
  it("hands out zeroed arrays that do not overlap, of every type, 8-byte aligned", () => {
    const arena = new ScratchArena(64);
    const a = arena.float32(5).fill(1);
    const b = arena.uint8(3).fill(2);
    const c = arena.float64(4).fill(3);
    const d = arena.int32(40).fill(4); // larger than a chunk: a buffer of its own
    assert.deepEqual([...a], [1, 1, 1, 1, 1]);
    assert.deepEqual([...b], [2, 2, 2]);
    assert.deepEqual([...c], [3, 3, 3, 3]);
    assert.ok(d.every((value) => value === 4));
    assert.equal(c.byteOffset % 8, 0);
  });

  it("reuses its buffers after a reset, zeroed again", () => {
    const arena = new ScratchArena(1024);
    const first = arena.float32(100).fill(7);
    arena.reset();
    const second = arena.float32(100);
    assert.equal(second.buffer, first.buffer, "the same buffer");
    assert.ok(second.every((value) => value === 0));
  });

  it("leaves an unset array as the memory last held: no pass over it for a caller that writes it all", () => {
    const arena = new ScratchArena(1024);
    arena.float32(100).fill(7);
    arena.int32(10).fill(-1);
    arena.reset();
    const unset = arena.float32(100, "unset");
    assert.equal(unset.length, 100);
    assert.ok(unset.every((value) => value === 7));
    assert.ok(arena.int32(10).every((value) => value === 0), "a zeroed one after it, in memory that held -1");
  });

  it("keeps at most retainBytesMax of buffers through a reset", () => {
    const arena = new ScratchArena(1000, 2500);
    const buffers = [arena.uint8(1000), arena.uint8(1000), arena.uint8(1000), arena.uint8(1000)].map((array) => array.buffer);
    assert.equal(new Set(buffers).size, 4);
    assert.equal(arena.highWaterBytes, 4000);
    arena.reset();
    const again = [arena.uint8(1000), arena.uint8(1000), arena.uint8(1000)].map((array) => array.buffer);
    assert.deepEqual(again.slice(0, 2), buffers.slice(0, 2), "the first two kept");
    assert.ok(!buffers.includes(again[2]!), "the third let go and allocated anew");
  });

  it("carves from the buffers its bufferOf makes: shared memory for a frame several threads fill", () => {
    const arena = new ScratchArena(1024, undefined, (bytes) => new SharedArrayBuffer(bytes));
    const first = arena.uint8(300).fill(9);
    assert.ok(first.buffer instanceof SharedArrayBuffer);
    arena.reset();
    const second = arena.uint8(300);
    assert.equal(second.buffer, first.buffer, "kept through the reset");
    assert.ok(second.every((value) => value === 0));
  });
});
