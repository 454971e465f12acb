// The WebAssembly engine against the native one: same weights, same input,
// same numbers; and the SIMD matrix kernel against the scalar reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReAgeEngine } from '../web/reage.js';

const root = new URL('..', import.meta.url).pathname;
const blobPath = join(root, 'weights/reage.blob');

async function engine() {
  const e = await ReAgeEngine.create(readFileSync(join(root, 'web/reage.wasm')));
  e.load(readFileSync(blobPath));
  return e;
}

test('the wasm build uses its SIMD kernel', async () => {
  const e = await engine();
  assert.equal(e.backend, 'wasm-simd');
});

test('SIMD elementwise kernels match their scalar references', async () => {
  const e = await engine();
  assert.equal(e.kernelBackend, 'wasm-simd');
  for (const n of [1, 7, 64, 1001]) {
    const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.3) * 3);
    for (const which of [0, 1, 2, 3]) {
      const fast = e.kernel(which, false, x), ref = e.kernel(which, true, x);
      let worst = 0;
      for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(fast[i] - ref[i]));
      assert.ok(worst < 1e-5, `kernel ${which}, n=${n}: max difference ${worst}`);
    }
  }
});

test('SIMD sgemm matches the scalar reference', async () => {
  const e = await engine();
  for (const [M, N, K] of [[4, 8, 1], [5, 13, 7], [64, 100, 300], [33, 517, 129]]) {
    const A = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 0.37));
    const B = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.11));
    const fast = e.sgemm(false, M, N, K, A, B), ref = e.sgemm(true, M, N, K, A, B);
    let worst = 0;
    for (let i = 0; i < M * N; i++) worst = Math.max(worst, Math.abs(fast[i] - ref[i]));
    assert.ok(worst < 1e-4 * Math.sqrt(K), `${M}x${N}x${K}: max difference ${worst}`);
  }
});

test('wasm and native generators agree on the shipped weights', async () => {
  const e = await engine();
  const n = 3 * e.res * e.res, G = e.groups.length;
  const face = new Float32Array(n);
  for (let i = 0; i < n; i++) face[i] = Math.fround(0.8 * Math.fround(Math.sin(Math.fround(0.01 * i))) * Math.fround(Math.cos(Math.fround(0.003 * i))));
  const gw = new Float32Array(G);
  gw[G / 2 - 1] = 0.3; gw[G / 2] = 0.7;
  const ours = e.generate(face, gw);
  const out = join(mkdtempSync(join(tmpdir(), 'reage-parity-')), 'native.f32');
  execFileSync(join(root, 'build/reage-parity'), [blobPath, out]);
  const native = new Float32Array(readFileSync(out).buffer.slice(0));
  assert.equal(native.length, n);
  let worst = 0, moved = 0;
  for (let i = 0; i < n; i++) {
    worst = Math.max(worst, Math.abs(ours[i] - native[i]));
    moved = Math.max(moved, Math.abs(ours[i] - Math.max(-1, Math.min(1, face[i]))));
  }
  assert.ok(worst < 1e-4, `max |wasm - native| = ${worst}`);
  assert.ok(moved > 0, 'the generator changed the face');
});

test('a damaged blob is refused and the loaded model stays', async () => {
  const e = await engine();
  const bytes = new Uint8Array(readFileSync(blobPath));
  assert.throws(() => e.load(bytes.subarray(0, 100)), /truncated/);
  const bad = bytes.slice();
  bad[bad.length >> 1] ^= 0x10;
  assert.throws(() => e.load(bad), /checksum/);
  assert.equal(e.res > 0, true);
  const rgba = new Uint8ClampedArray(64 * 64 * 4).fill(128);
  const age = e.estimateAge(rgba, 64, 64, { cx: 32, cy: 32, size: 64 });
  assert.ok(age >= 0 && age <= 100);
});

test('re-aging at the source age leaves the photo unchanged; other ages change only the box', async () => {
  const e = await engine();
  const W = 300, H = 200;
  const rgba = new Uint8ClampedArray(W * H * 4);
  for (let i = 0; i < W * H; i++) {
    rgba[4 * i] = (i % W) % 256; rgba[4 * i + 1] = (i / W) | 0; rgba[4 * i + 2] = 90; rgba[4 * i + 3] = 255;
  }
  const box = { cx: 150, cy: 100, size: 120 };
  const same = e.apply(rgba, W, H, box, 35, 35);
  assert.deepEqual(same, rgba);
  const older = e.apply(rgba, W, H, box, 35, 80);
  let inside = 0, outside = 0;
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const i = 4 * (y * W + x);
    const d = Math.abs(older[i] - rgba[i]) + Math.abs(older[i + 1] - rgba[i + 1]) + Math.abs(older[i + 2] - rgba[i + 2]);
    if (Math.abs(x + 0.5 - box.cx) < box.size / 2 && Math.abs(y + 0.5 - box.cy) < box.size / 2) inside += d;
    else outside += d;
  }
  assert.equal(outside, 0, 'pixels outside the box are untouched');
  assert.ok(inside > 0, 'the face changed');
});

test('a photo over the size limit is refused with a message', async () => {
  const e = await engine();
  assert.throws(() => e.estimateAge(new Uint8ClampedArray(4), 6000, 5000, { cx: 1, cy: 1, size: 1 }), /megapixels/);
});
