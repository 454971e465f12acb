// The evaluation's own arithmetic, on a handful of images with known answers
// (no trained model needed): the judge's descriptor puts an image next to
// itself and two different adults far apart, and the summary counts right.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { PATCH_DROP, colourSpeckle, darkestPatch, loadJudge, summarize, textureBands } from '../tools/eval/judge.mjs';

const require = createRequire(import.meta.url);
const jpeg = require('jpeg-js');
const root = new URL('..', import.meta.url).pathname;
const data = process.env.REAGE_TEST_DATA || join(root, '../shared/data/utkface-part1');

function adults(k) {
  const rows = readFileSync(join(data, 'labels.tsv'), 'utf8').split('\n').map((l) => l.split('\t'))
    .filter((r) => r[4] === 'test' && Number(r[1]) >= 25 && Number(r[1]) <= 45);
  // different people: the first photos of different sexes and ethnicities
  const seen = new Set(), out = [];
  for (const r of rows) {
    const key = `${r[2]}-${r[3]}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const img = jpeg.decode(readFileSync(join(data, 'images', r[0])), { useTArray: true, formatAsRGBA: false });
    out.push({ age: Number(r[1]), rgb: img.data, w: img.width, h: img.height });
    if (out.length === k) break;
  }
  return out;
}

test('the judge: an image is its own twin, different adults are far apart, ages are ages', async () => {
  const judge = await loadJudge();
  const [a, b, c] = adults(3);
  const da = await judge.descriptor(a.rgb, a.w, a.h);
  assert.ok(judge.distance(da, await judge.descriptor(a.rgb, a.w, a.h)) < 1e-4, 'same image, same descriptor');
  // the same photo mirrored is still the same person
  const flip = new Uint8Array(a.rgb.length);
  for (let y = 0; y < a.h; y++) for (let x = 0; x < a.w; x++) for (let ch = 0; ch < 3; ch++) {
    flip[(y * a.w + x) * 3 + ch] = a.rgb[(y * a.w + (a.w - 1 - x)) * 3 + ch];
  }
  const dFlip = judge.distance(da, await judge.descriptor(flip, a.w, a.h));
  const dOther = Math.min(judge.distance(da, await judge.descriptor(b.rgb, b.w, b.h)),
    judge.distance(da, await judge.descriptor(c.rgb, c.w, c.h)));
  if (process.env.REAGE_TEST_VERBOSE) console.log({ dFlip, dOther });
  assert.ok(dFlip < 0.45, `mirrored photo of the same person at ${dFlip.toFixed(3)}`);
  assert.ok(dOther > 0.55 && dOther > dFlip, `different people at ${dOther.toFixed(3)}`);
  const age = await judge.age(a.rgb, a.w, a.h);
  assert.ok(Math.abs(age - a.age) < 20, `judged ${age.toFixed(1)} for a ${a.age}-year-old`);
});

test('the summary: group means, in-group shares and identity shares', () => {
  const ages = [[0, 19], [20, 49], [50, 200]];
  const face = (trueAge, inputAge, outs) => ({ trueAge, inputAge, outputs: outs.map(([age, distance, own, patch, speckle]) => ({ age, distance, own, patch, speckle })) });
  const s = summarize([
    face(10, 12, [[8, null, 5, 0.01, 2], [30, null], [60, null, 61, 0.4, 1]]),
    face(30, 33, [[15, null], [25, 0.4], [70, 0.7, null, 0.02, 4]]),
    face(60, 55, [[18, null, 9, 0.2, 3], [45, 0.55], [40, 0.3, 58, 0.1, 7]]),
  ], ages);
  assert.equal(s.groups[0].outputs_mean_age, (8 + 15 + 18) / 3);
  assert.equal(s.groups[0].outputs_in_group, 1);
  assert.equal(s.groups[0].outputs_own_age, (5 + 9) / 2); // faces without the engine's reading are left out
  assert.ok(Number.isNaN(s.groups[1].outputs_own_age));
  assert.equal(s.groups[2].outputs_in_group, 2 / 3);
  assert.equal(s.groups[0].outputs_dark_patch, 1 / 2); // 0.2 is over PATCH_DROP, 0.01 is not; a face without the reading is left out
  assert.ok(Number.isNaN(s.groups[1].outputs_dark_patch));
  assert.equal(s.groups[2].outputs_dark_patch, 1 / 3);
  assert.equal(s.groups[0].outputs_speckle, (2 + 3) / 2);
  assert.ok(Number.isNaN(s.groups[1].outputs_speckle));
  assert.equal(s.groups[2].outputs_speckle, (1 + 4 + 7) / 3);
  assert.equal(s.groups[1].real_mean_age, 33);
  assert.equal(s.groups[1].real_in_group, 1);
  assert.equal(s.groups[2].real_in_group, 1);
  assert.equal(s.groups[0].real_count, 1);
  assert.deepEqual(s.by_input_group.map((r) => r.faces), [1, 1, 1]);
  assert.deepEqual(s.by_input_group[1].outputs_mean_age, [15, 25, 70]);
  assert.equal(s.by_input_group[2].group, '50+');
  assert.equal(s.identity.pairs, 4); // the child's outputs are not scored
  assert.equal(s.identity.mean_distance, (0.4 + 0.7 + 0.55 + 0.3) / 4);
  assert.equal(s.identity.under_0_6, 3 / 4);
  assert.equal(s.identity.under_0_5, 2 / 4);
});

test('dark patches: the largest drop in brightness over a block, not over a pixel or the whole face', () => {
  const side = 64, k = 4; // blocks of side/16
  const flat = (v) => new Uint8Array(side * side * 3).fill(v);
  const input = flat(160);
  assert.equal(darkestPatch(input, input, side), 0);
  assert.equal(darkestPatch(input, flat(200), side), 0, 'brightening is not a dark patch');
  // one block darker by 64 levels in every channel: a drop of 64/255
  const patch = flat(160);
  for (let y = 8; y < 8 + k; y++) for (let x = 12; x < 12 + k; x++) for (let c = 0; c < 3; c++) patch[(y * side + x) * 3 + c] = 96;
  assert.ok(Math.abs(darkestPatch(input, patch, side) - 64 / 255) < 1e-9);
  assert.ok(64 / 255 > PATCH_DROP);
  // the same pixels straddling four blocks: each loses a quarter as much
  const straddle = flat(160);
  for (let y = 6; y < 6 + k; y++) for (let x = 14; x < 14 + k; x++) for (let c = 0; c < 3; c++) straddle[(y * side + x) * 3 + c] = 96;
  assert.ok(Math.abs(darkestPatch(input, straddle, side) - 16 / 255) < 1e-9);
  // thin dark lines (wrinkles): a single dark row per block costs a quarter of its depth
  const lines = flat(160);
  for (let y = 0; y < side; y += k) for (let x = 0; x < side * 3; x++) lines[y * side * 3 + x] = 60;
  assert.ok(darkestPatch(input, lines, side) < PATCH_DROP);
});

test('colour speckle: how the change\'s colour varies from pixel to pixel, blind to brightness and to smooth tone', () => {
  const side = 32;
  const flat = (v) => new Uint8Array(side * side * 3).fill(v);
  const input = flat(120);
  const each = (img, f) => { for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) f(img, (y * side + x) * 3, x, y); return img; };
  assert.equal(colourSpeckle(input, input, side), 0);
  // a warmer tone over the whole face, and sharp grey lines: no speckle
  assert.equal(colourSpeckle(input, each(flat(120), (m, i) => { m[i] = 150; m[i + 2] = 100; }), side), 0);
  assert.equal(colourSpeckle(input, each(flat(120), (m, i, x, y) => { if (y % 3 === 0) m.fill(40, i, i + 3); }), side), 0);
  // red alternating +-20 from pixel to pixel: every neighbour pair differs by 40 in R-G, none in B-G
  const board = each(flat(120), (m, i, x, y) => { m[i] = (x + y) % 2 ? 140 : 100; });
  assert.ok(Math.abs(colourSpeckle(input, board, side) - 20) < 1e-9);
  // the input's own texture cancels: the same board on both sides is no change
  assert.equal(colourSpeckle(board, board, side), 0);
  // one sharp colour edge (the left half redder by 40) counts only along its length
  const edge = each(flat(120), (m, i, x) => { if (x < side / 2) m[i] = 160; });
  assert.ok(Math.abs(colourSpeckle(input, edge, side) - (40 * side) / (4 * side * (side - 1))) < 1e-9);
});

test('texture by scale: grain is fine detail, a blotch coarse, a smooth ramp none', () => {
  const side = 64;
  const image = (f) => { const m = new Uint8Array(side * side * 3); for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) m.fill(f(x, y), (y * side + x) * 3, (y * side + x + 1) * 3); return m; };
  const near = (a, b, tol, what) => assert.ok(Math.abs(a - b) < tol, `${what}: ${a} against ${b}`);
  textureBands(image(() => 128), side).forEach((v, b) => near(v, 0, 1e-9, `flat, band ${b}`));
  // a linear ramp: every box blur keeps it where the clamped edge is out of reach
  textureBands(image((x, y) => 40 + 2 * x + y), side).forEach((v, b) => near(v, 0, 1e-4, `ramp, band ${b}`));
  // grain: a 1-pixel checkerboard of +-a in brightness; a 3x3 box leaves a/9 of it, so the fine band is 8a/9
  const a = 30, grain = textureBands(image((x, y) => ((x + y) % 2 ? 128 + a : 128 - a)), side);
  near(grain[0], (8 * a) / 9, 1e-3, 'grain, fine band');
  assert.ok(grain[1] < grain[0] / 5 && grain[2] < grain[0] / 5, `grain lands in the fine band: ${grain}`);
  // soft blotches, +-a over a 24-pixel period: most detail at the coarse scale, almost none at the fine one
  const blotch = textureBands(image((x, y) => 128 + a * Math.sin((2 * Math.PI * x) / 24) * Math.sin((2 * Math.PI * y) / 24)), side);
  assert.ok(blotch[2] > 2 * blotch[1] && blotch[1] > 2 * blotch[0], `blotches land in the coarse band: ${blotch}`);
  // only the middle half counts: the same grain framing a flat centre (16 pixels a side) leaks in at its rim only
  const framed = textureBands(image((x, y) => (x >= 16 && y >= 16 && x < 48 && y < 48 ? 128 : (x + y) % 2 ? 128 + a : 128 - a)), side);
  assert.ok(framed.every((v) => v < grain[0] / 4), `detail outside the middle half is left out: ${framed}`);
});

test('texture by scale: the summary sets outputs against real faces of the target group', () => {
  const ages = [[0, 9], [60, 120]];
  const faces = [
    { trueAge: 5, inputAge: 5, bands: [1, 2, 3], outputs: [{ age: 5, bands: [1, 1, 1] }, { age: 60, bands: [2, 4, 6] }] },
    { trueAge: 70, inputAge: 65, bands: [4, 4, 4], outputs: [{ age: 8, bands: [3, 3, 3] }, { age: 70, bands: [4, 6, 8] }] },
  ];
  const s = summarize(faces, ages);
  assert.deepEqual(s.groups[0].outputs_texture, [2, 2, 2]);
  assert.deepEqual(s.groups[0].real_texture, [1, 2, 3]);
  assert.deepEqual(s.groups[1].outputs_texture, [3, 5, 7]);
  assert.deepEqual(s.groups[1].real_texture, [4, 4, 4]);
});
