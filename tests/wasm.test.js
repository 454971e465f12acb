// The WebAssembly engine against the native one: same weights, same input,
// same numbers; and the SIMD matrix kernel against the scalar reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReAgeEngine } from '../web/reage.js';

const root = new URL('..', import.meta.url).pathname;
const blobPath = join(root, 'weights/reage.blob');
const detectorPath = join(root, 'weights/blazeface.blob');
const meshPath = join(root, 'weights/facemesh.blob');

// A file of float32s (readFileSync may hand back a slice of a shared pool).
function floats(path) {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

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
    for (const which of [0, 1, 2, 3, 4]) {
      // the depthwise row reads three rows of n
      const x = Float32Array.from({ length: which === 4 ? 3 * n : n }, (_, i) => Math.sin(i * 1.3) * 3);
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

// The generator's output on one input, wasm against native (build/reage-parity).
async function generatorParity(blob) {
  const e = await ReAgeEngine.create(readFileSync(join(root, 'web/reage.wasm')));
  e.load(readFileSync(blob));
  const n = 3 * e.res * e.res, G = e.groups.length;
  const face = new Float32Array(n);
  for (let i = 0; i < n; i++) face[i] = Math.fround(0.8 * Math.fround(Math.sin(Math.fround(0.01 * i))) * Math.fround(Math.cos(Math.fround(0.003 * i))));
  const gw = new Float32Array(G);
  gw[G / 2 - 1] = 0.3; gw[G / 2] = 0.7;
  const ours = e.generate(face, gw);
  const out = join(mkdtempSync(join(tmpdir(), 'reage-parity-')), 'native.f32');
  execFileSync(join(root, 'build/reage-parity'), [blob, out]);
  const native = floats(out);
  assert.equal(native.length, n);
  let worst = 0, moved = 0;
  for (let i = 0; i < n; i++) {
    worst = Math.max(worst, Math.abs(ours[i] - native[i]));
    moved = Math.max(moved, Math.abs(ours[i] - Math.max(-1, Math.min(1, face[i]))));
  }
  assert.ok(worst < 1e-4, `max |wasm - native| = ${worst}`);
  assert.ok(moved > 0, 'the generator changed the face');
}

test('wasm and native generators agree on the shipped weights', () => generatorParity(blobPath));

// A generator of another shape (two residual blocks fewer, a wider code) from a
// short run warm-started on the shipped weights (--init-from), one step at a large
// rate so that every tensor has moved. (An untrained tiny generator will not do: its
// instance norms divide by near-zero variances, and the two builds' rounding grows
// to 1e-2.)
const trainer = join(root, 'build/reage-train'), data = process.env.REAGE_TEST_DATA || join(root, '../shared/data/utkface-part1');
test('wasm and native generators agree on a generator of another shape', async () => {
  const out = mkdtempSync(join(tmpdir(), 'reage-parity-'));
  execFileSync(trainer, ['--config', 'shipped', '--data', data, '--out', out, '--max-images', '24', '--sample-every', '0',
                         '--init-from', join(root, 'weights/checkpoint.bin'), '--gen-nres', '2', '--gen-code', '96',
                         '--lr-g', '0.001', '--ema', '0', '--steps', '1'], { cwd: root });
  const blob = join(out, 'reage.blob');
  const header = readFileSync(blob).subarray(0, 1024).toString('latin1');
  assert.match(header, /gen_nres=2\n/);
  assert.match(header, /gen_code=96\n/);
  await generatorParity(blob);
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

// A photo whose red is x and green is y, so that any change shows.
function gradientPhoto(W, H) {
  const rgba = new Uint8ClampedArray(W * H * 4);
  for (let i = 0; i < W * H; i++) {
    rgba[4 * i] = (i % W) % 256; rgba[4 * i + 1] = (i / W) | 0; rgba[4 * i + 2] = 90; rgba[4 * i + 3] = 255;
  }
  return rgba;
}

// Sums |after - before| inside the (possibly rotated) box and outside it.
function changeInsideBox(before, after, W, H, box) {
  const c = Math.cos(box.angle || 0), s = Math.sin(box.angle || 0);
  let inside = 0, outside = 0;
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const i = 4 * (y * W + x), dx = x + 0.5 - box.cx, dy = y + 0.5 - box.cy;
    const u = c * dx + s * dy, v = -s * dx + c * dy;
    const d = Math.abs(after[i] - before[i]) + Math.abs(after[i + 1] - before[i + 1]) + Math.abs(after[i + 2] - before[i + 2]);
    if (Math.abs(u) < box.size / 2 && Math.abs(v) < box.size / 2) inside += d; else outside += d;
  }
  return { inside, outside };
}

test('re-aging at the source age leaves the photo unchanged; other ages change only the box', async () => {
  const e = await engine();
  const W = 300, H = 200, rgba = gradientPhoto(W, H);
  const box = { cx: 150, cy: 100, size: 120 };
  const same = e.apply(rgba, W, H, [{ box, source: 35 }], 35);
  assert.deepEqual(same, rgba);
  const { inside, outside } = changeInsideBox(rgba, e.apply(rgba, W, H, [{ box, source: 35 }], 80), W, H, box);
  assert.equal(outside, 0, 'pixels outside the box are untouched');
  assert.ok(inside > 0, 'the face changed');
});

// The page's two halves of the shipped model (make page-models): the photo's
// needs first, the generator only for a face the mesh cannot trace.
test('weights without the generator re-age with it once it is loaded, as the whole blob does', async () => {
  const core = join(root, 'build/page/reage-core.blob'), gen = join(root, 'build/page/reage-generator.blob');
  assert.ok(existsSync(core) && existsSync(gen), 'make page-models has written build/page/');
  const e = await ReAgeEngine.create(readFileSync(join(root, 'web/reage.wasm')));
  e.load(readFileSync(core));
  const W = 200, H = 160, rgba = gradientPhoto(W, H), faces = [{ box: { cx: 100, cy: 80, size: 110 }, source: 30 }];
  assert.throws(() => e.apply(rgba, W, H, faces, 75), (err) => err.needsGenerator === true && /needs the generator/.test(err.message));
  assert.throws(() => e.loadGenerator(readFileSync(core)), /carries no generator/);
  assert.throws(() => e.loadGenerator(readFileSync(meshPath)), /bad magic/);
  e.loadGenerator(readFileSync(gen));
  const whole = await engine();
  assert.deepEqual(e.apply(rgba, W, H, faces, 75), whole.apply(rgba, W, H, faces, 75));
});

test('a photo over the size limit is refused with a message', async () => {
  const e = await engine();
  assert.throws(() => e.estimateAge(new Uint8ClampedArray(4), 6000, 5000, { cx: 1, cy: 1, size: 1 }), /megapixels/);
});

test('the entry points check their arguments: sizes that wrap, short buffers, boxes and counts', async () => {
  const e = await engine();
  e.loadDetector(readFileSync(detectorPath));
  const W = 64, H = 48, rgba = new Uint8ClampedArray(W * H * 4).fill(120);
  const box = { cx: 32, cy: 24, size: 40, angle: 0 };
  // 65536 x 65537 wraps to 65536 pixels in 32 bits; a 4-byte buffer declared 4000 x 4000
  assert.throws(() => e.detect(new Uint8ClampedArray(4), 65536, 65537), /larger than/);
  assert.throws(() => e.estimateAge(new Uint8ClampedArray(4), 2000, 2000, box), /bytes, not the 2000x2000x4/);
  assert.throws(() => e.detect(rgba, W, H + 1), /bytes, not/);
  for (const bad of [{ ...box, cx: NaN }, { ...box, size: Infinity }, { ...box, size: 2 }, { ...box, angle: 100 }, { ...box, cx: 5000 }]) {
    assert.throws(() => e.estimateAge(rgba, W, H, bad), /not a box/, JSON.stringify(bad));
  }
  const before = rgba.slice();
  assert.throws(() => e.apply(rgba, W, H, [{ box, source: 30 }, { box: { ...box, cy: NaN }, source: 30 }], 70), /not a box/);
  assert.throws(() => e.apply(rgba, W, H, [{ box, source: -5 }], 70), /ages/);
  assert.deepEqual(rgba, before, 'a refused request changes nothing');
  // the raw exports: a negative face count, a negative maximum
  const ptr = e.x.reage_malloc(rgba.byteLength);
  assert.equal(e.x.reage_apply(ptr, rgba.byteLength, W, H, 0, -1), -1, 'a negative face count is refused');
  assert.equal(e.x.reage_detect(ptr, rgba.byteLength, W, H, 0, -1), -1, 'a negative maximum is refused');
  e.x.reage_free(ptr);
});

test('wasm and native face detectors find the same faces', async () => {
  const e = await engine();
  e.loadDetector(readFileSync(detectorPath));
  const dir = mkdtempSync(join(tmpdir(), 'reage-detect-'));
  const [pixels, faces] = [join(dir, 'photo.rgba'), join(dir, 'faces.f32')];
  // the sample photo, decoded natively so that both builds see the same pixels
  const stdout = execFileSync(join(root, 'build/reage-parity'),
    [blobPath, join(dir, 'gen.f32'), detectorPath, join(root, 'web/sample.jpg'), pixels, faces]).toString();
  const [W, H] = stdout.trim().split('\n').pop().split(' ').map(Number);
  const rgba = new Uint8ClampedArray(readFileSync(pixels));
  const native = floats(faces);
  const ours = e.detect(rgba, W, H);
  assert.ok(ours.length >= 1, 'the sample photo has a face');
  assert.equal(ours.length * 21, native.length, 'as many faces as natively');
  for (let i = 0; i < ours.length; i++) {
    const f = ours[i], n = native.subarray(i * 21, (i + 1) * 21);
    const flat = [f.score, f.rect.x0, f.rect.y0, f.rect.x1, f.rect.y1, ...f.keypoints.flat(), f.box.cx, f.box.cy, f.box.size, f.box.angle];
    const worst = Math.max(...flat.map((v, k) => Math.abs(v - n[k])));
    assert.ok(worst < 1e-3, `face ${i}: max |wasm - native| = ${worst}`);
  }
});

test('wasm and native face meshes agree within 1e-3 pixels', async () => {
  const e = await engine();
  e.loadDetector(readFileSync(detectorPath));
  e.loadMesh(readFileSync(meshPath));
  const dir = mkdtempSync(join(tmpdir(), 'reage-mesh-'));
  const [pixels, faces, meshes] = [join(dir, 'photo.rgba'), join(dir, 'faces.f32'), join(dir, 'meshes.f32')];
  const stdout = execFileSync(join(root, 'build/reage-parity'),
    [blobPath, join(dir, 'gen.f32'), detectorPath, join(root, 'web/sample.jpg'), pixels, faces, meshPath, meshes]).toString();
  const [W, H] = stdout.trim().split('\n').pop().split(' ').map(Number);
  const rgba = new Uint8ClampedArray(readFileSync(pixels));
  const native = floats(meshes), found = e.detect(rgba, W, H);
  const per = 5 + 3 * 468;
  assert.equal(found.length * per, native.length, 'a mesh for every face');
  for (let i = 0; i < found.length; i++) {
    const m = e.mesh(rgba, W, H, found[i]), n = native.subarray(i * per, (i + 1) * per);
    const flat = [m.score, m.roi.cx, m.roi.cy, m.roi.size, m.roi.angle, ...m.points];
    const worst = Math.max(...flat.map((v, k) => Math.abs(v - n[k])));
    assert.ok(m.score > 0.9, `face ${i}: the mesh sees a face (${m.score})`);
    assert.ok(worst < 1e-3, `face ${i}: max |wasm - native| = ${worst}`);
  }
  // a bad mesh blob is refused and the loaded one stays
  assert.throws(() => e.loadMesh(readFileSync(detectorPath)), /magic|mesh/i);
  assert.ok(e.mesh(rgba, W, H, found[0]).score > 0.9, 'the earlier mesh still runs');
  assert.throws(() => e.mesh(rgba, W, H, { ...found[0], rect: { x0: NaN, y0: 0, x1: 1, y1: 1 } }), /not a face box/);
});

// The shipped pipeline (the age prototypes on the face mesh), wasm against native: the same bytes
// within a level where rounding parts.
test('wasm and native re-age a photo alike through the shipped pipeline', async () => {
  const e = await engine();
  e.loadDetector(readFileSync(detectorPath));
  e.loadMesh(readFileSync(meshPath));
  const dir = mkdtempSync(join(tmpdir(), 'reage-pipeline-'));
  const [pixels, aged] = [join(dir, 'photo.rgba'), join(dir, 'aged.rgba')];
  const stdout = execFileSync(join(root, 'build/reage-parity'),
    ['--pipeline', blobPath, detectorPath, meshPath, join(root, 'web/sample.jpg'), pixels, aged]).toString();
  const [W, H, by] = stdout.trim().split(' ');
  assert.equal(by, 'prototypes', 'the shipped weights carry age prototypes and the mesh finds the sample face');
  const rgba = new Uint8ClampedArray(readFileSync(pixels)), native = new Uint8ClampedArray(readFileSync(aged));
  const [face] = e.detect(rgba, Number(W), Number(H));
  const ours = e.apply(rgba, Number(W), Number(H), [{ box: face.box, source: 30 }], 75);
  let worst = 0, sum = 0, changed = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs(ours[i] - native[i]);
    worst = Math.max(worst, d);
    sum += d;
    changed += ours[i] !== rgba[i];
  }
  assert.ok(changed > 1000, `the face changed (${changed} values)`);
  assert.ok(worst <= 2 && sum / ours.length < 0.05, `max |wasm - native| = ${worst}, mean ${sum / ours.length}`);
});

// The slider's preview: planned once, then drawn at any age close to the full re-aging, the face's own
// age exactly unchanged; asked wrongly, refused with a message.
test('the preview draws the face at any age close to the full re-aging', async () => {
  const e = await engine();
  e.loadDetector(readFileSync(detectorPath));
  e.loadMesh(readFileSync(meshPath));
  assert.throws(() => e.previewRender(50), /no preview prepared/);
  const dir = mkdtempSync(join(tmpdir(), 'reage-preview-'));
  const pixels = join(dir, 'photo.rgba');
  const [W, H] = execFileSync(join(root, 'build/reage-parity'),
    ['--pipeline', blobPath, detectorPath, meshPath, join(root, 'web/sample.jpg'), pixels, join(dir, 'aged.rgba')]).toString().trim().split(' ').map(Number);
  const rgba = new Uint8ClampedArray(readFileSync(pixels));
  const [face] = e.detect(rgba, W, H);
  const faces = [{ box: face.box, source: 30 }];
  assert.throws(() => e.previewPrepare(rgba, W, H, [{ box: { cx: 0, cy: 0, size: 1e9 }, source: 30 }]), /face box/);
  e.previewPrepare(rgba, W, H, faces);
  // planned an anchor a call, nearest first; drawing plans what it needs
  const left = e.previewPlan(30);
  assert.ok(left >= 6 && left <= 9, `anchors left to plan after the first: ${left}`);
  const same = e.previewRender(30);
  assert.ok(!same || same.rgba.every((v, i) => i % 4 !== 3 || v === 0), 'at the face\'s own age nothing changes');
  assert.throws(() => e.previewRender(NaN), /age nan: must be 0..120/);
  for (const age of [5, 47, 75]) {
    const part = e.previewRender(age), full = e.apply(rgba, W, H, faces, age);
    assert.ok(part && part.width > 20 && part.height > 20, `a region at ${age}`);
    let sum = 0, n = 0, changed = 0;
    for (let y = 0; y < part.height; y++) for (let x = 0; x < part.width; x++) {
      const i = 4 * (y * part.width + x), j = 4 * ((part.y0 + y) * W + part.x0 + x);
      const shown = part.rgba[i + 3] ? part.rgba : rgba, k = part.rgba[i + 3] ? i : j;
      for (let c = 0; c < 3; c++) { sum += Math.abs(shown[k + c] - full[j + c]); n++; }
      changed += part.rgba[i + 3] !== 0;
    }
    assert.ok(changed > 500 && sum / n < 3, `at ${age}: ${changed} pixels changed, ${(sum / n).toFixed(2)} levels from the full re-aging`);
  }
  let steps = 0;
  while (e.previewPlan(50) > 0) steps++;
  assert.ok(steps < left, `the rest planned in ${steps} more calls`);
});

// The photo is copied into the engine once: estimating and re-aging it again and again reuse that copy,
// leave it unchanged, and grow nothing.
test('the engine keeps one copy of a photo across detection, estimates and re-aging', async () => {
  const e = await engine();
  const W = 300, H = 240, rgba = gradientPhoto(W, H), box = { cx: 150, cy: 120, size: 160, angle: 0 };
  const first = e.apply(rgba, W, H, [{ box, source: 30 }], 70);
  const heap = e.x.memory.buffer.byteLength;
  for (let k = 0; k < 4; k++) {
    e.estimateAge(rgba, W, H, box);
    const again = e.apply(rgba, W, H, [{ box, source: 30 }], 70);
    assert.deepEqual(again, first, 'the same photo re-aged again gives the same pixels (its copy was not re-aged in place)');
  }
  assert.equal(e.x.memory.buffer.byteLength, heap, 'the heap did not grow');
  // another photo of the same size replaces it: no stale pixels
  const other = gradientPhoto(W, H).map((v, i) => (i % 4 === 2 ? 200 : v));
  const theirs = e.apply(other, W, H, [], 70);
  assert.deepEqual(theirs, other, 'no faces: the new photo comes back as it is');
});

test('a damaged detector blob is refused and the loaded detector stays', async () => {
  const e = await engine();
  const bytes = new Uint8Array(readFileSync(detectorPath));
  e.loadDetector(bytes);
  const cut = bytes.slice(0, bytes.length - 100);
  assert.throws(() => e.loadDetector(cut), /truncated|checksum/);
  assert.throws(() => e.loadDetector(readFileSync(blobPath)), /magic|detector/i);
  const W = 64, H = 64, rgba = new Uint8ClampedArray(W * H * 4).fill(200);
  assert.deepEqual(e.detect(rgba, W, H), [], 'the earlier detector still runs: a blank photo has no face');
});

test('a rotated box changes only the pixels inside it', async () => {
  const e = await engine();
  const W = 240, H = 200, rgba = gradientPhoto(W, H);
  const box = { cx: 120, cy: 100, size: 110, angle: 0.6 };
  const { inside, outside } = changeInsideBox(rgba, e.apply(rgba, W, H, [{ box, source: 30 }], 75), W, H, box);
  assert.equal(outside, 0, 'pixels outside the rotated box are untouched');
  assert.ok(inside > 0, 'the face changed');
});

// The threaded build (web/reage-mt.wasm) on two threads: its pool runs every index of a loop once, on both
// threads, and every result equals the single-threaded engine's to the bit.
async function threaded(threads) {
  const e = await ReAgeEngine.create(readFileSync(join(root, 'web/reage-mt.wasm')), { threads });
  e.load(readFileSync(blobPath));
  e.loadDetector(readFileSync(detectorPath));
  e.loadMesh(readFileSync(meshPath));
  return e;
}

test('the threaded engine\'s pool runs each index of a loop once, on its helpers too', async () => {
  const e = await threaded(2);
  try {
    assert.equal(e.threads, 2);
    const n = 20000, p = e.x.reage_malloc(4 * n);
    let helped = 0;
    // a helper that wakes late finds nothing left to take: tried until one takes a share
    for (let round = 0; round < 50 && !helped; round++) {
      for (const grain of [1, 7, 5000]) {
        new Int32Array(e.memory.buffer, p, n).fill(0);
        e.x.reage_test_parallel(n, grain, p);
        const ran = new Int32Array(e.memory.buffer, p, n);
        assert.ok(ran.every((v) => v === 1 || v === 2), `grain ${grain}: each index once (by thread 0 or 1)`);
        helped += ran.filter((v) => v === 2).length;
      }
    }
    assert.ok(helped > 0, 'the helper took a share');
  } finally {
    e.close();
  }
  assert.equal(e.threads, 1, 'closed: one thread');
});

test('the threaded engine gives the single-threaded engine\'s results to the bit', async () => {
  const single = await engine(), multi = await threaded(2);
  try {
    single.loadDetector(readFileSync(detectorPath));
    single.loadMesh(readFileSync(meshPath));
    const same = (a, b, what) => assert.ok(a.length === b.length && a.every((v, i) => Object.is(v, b[i])), what);
    // matrix products wide enough to be split between the threads
    const [M, N, K] = [48, 3000, 64];
    const A = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 0.37)), B = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.11));
    same(multi.sgemm(false, M, N, K, A, B), single.sgemm(false, M, N, K, A, B), 'sgemm');
    const face = Float32Array.from({ length: 3 * 128 * 128 }, (_, i) => Math.sin(i * 0.01) * 0.5), gw = new Float32Array(6);
    gw[3] = 1;
    same(multi.generate(face, gw), single.generate(face, gw), 'the generator');
    // the shipped pipeline on the sample photo, the preview, and a camera frame
    const dir = mkdtempSync(join(tmpdir(), 'reage-threads-'));
    const pixels = join(dir, 'photo.rgba');
    const [W, H] = execFileSync(join(root, 'build/reage-parity'),
      ['--pipeline', blobPath, detectorPath, meshPath, join(root, 'web/sample.jpg'), pixels, join(dir, 'aged.rgba')]).toString().trim().split(' ').map(Number);
    const rgba = new Uint8ClampedArray(readFileSync(pixels));
    const [f1] = single.detect(rgba, W, H), [f2] = multi.detect(rgba, W, H);
    assert.deepEqual(f2, f1, 'the faces found');
    same(multi.mesh(rgba, W, H, f2).points, single.mesh(rgba, W, H, f1).points, 'the mesh');
    const faces = [{ box: f1.box, source: 30 }];
    for (const age of [5, 75]) same(multi.apply(rgba, W, H, faces, age), single.apply(rgba, W, H, faces, age), `re-aged to ${age}`);
    single.previewPrepare(rgba, W, H, faces);
    multi.previewPrepare(rgba, W, H, faces);
    same(multi.previewRender(60).rgba, single.previewRender(60).rgba, 'the preview');
    const a = rgba.slice(), b = rgba.slice();
    assert.deepEqual(multi.frame(b, W, H, f1.box, 30, 70), single.frame(a, W, H, f1.box, 30, 70), 'the camera\'s next box');
    same(b, a, 'a camera frame');
  } finally {
    multi.close();
  }
});
