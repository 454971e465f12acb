// `make eval`: an external judge of the shipped weights, as face-aging papers
// measure. @vladmandic/face-api's age net and 128-d face descriptor, on
// TensorFlow.js's WASM backend, score every test face re-aged to every age
// group by build/reage-render: does the output read as the target age, and is
// it still the same person? The judge's models are never used in training.
//
// usage: node tools/eval/judge.mjs [--weights BLOB] [--data DIR] [--limit N] [--out DIR] [--faces FILE]
//        [--method gan|prototypes|structured]
//        OUT/eval.json (the tables) and OUT/eval-grid.jpg, both small enough to commit; FILE (default
//        build/eval-faces.json, not tracked: 1 MB a run) each face's true and judged age, and each output's
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const root = new URL('../..', import.meta.url).pathname;

export const ADULT = 20; // the descriptor is unreliable on children: identity is scored from 20 up

// The judge: age in years and a face descriptor for a whole aligned crop
// (on UTKFace-style crops that is more accurate than detecting first).
export async function loadJudge() {
  const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
  require('@tensorflow/tfjs-backend-wasm').setWasmPaths(join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist/'));
  await faceapi.tf.setBackend('wasm');
  await faceapi.tf.ready();
  const models = join(root, 'node_modules/@vladmandic/face-api/model');
  await faceapi.nets.ageGenderNet.loadFromDisk(models);
  await faceapi.nets.faceRecognitionNet.loadFromDisk(models);
  const tensor = (rgb, w, h) => faceapi.tf.tensor3d(rgb, [h, w, 3], 'int32');
  return {
    async age(rgb, w, h) {
      const t = tensor(rgb, w, h);
      try { return (await faceapi.nets.ageGenderNet.predictAgeAndGender(t)).age; } finally { t.dispose(); }
    },
    async descriptor(rgb, w, h) {
      const t = tensor(rgb, w, h);
      try { return await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(t); } finally { t.dispose(); }
    },
    distance: (a, b) => faceapi.euclideanDistance(a, b),
  };
}

// Dark patches, the failure the grid showed where faces go far in age: an
// output's largest drop in brightness from its input (0..1, the mean of R, G
// and B) over any block side/16 pixels a side. Ageing darkens lines and
// the shadow of a beard, which average out over a block; a block that loses
// more than PATCH_DROP reads as a dark patch. The trainer's shade term
// penalises the same kind of drop, so this is a check that it worked on the
// test split, at full resolution, not an independent judge of looks.
export const PATCH_DROP = 0.15;
export function darkestPatch(input, output, side) {
  const k = Math.max(1, Math.floor(side / 16)), n = Math.floor(side / k);
  let worst = 0;
  for (let by = 0; by < n; by++) {
    for (let bx = 0; bx < n; bx++) {
      let sum = 0;
      for (let y = by * k; y < (by + 1) * k; y++) {
        for (let i = (y * side + bx * k) * 3; i < (y * side + (bx + 1) * k) * 3; i++) sum += input[i] - output[i];
      }
      worst = Math.max(worst, sum / (k * k * 3 * 255));
    }
  }
  return worst;
}

// Colour speckle, the other failure the grid shows (grainy red, green and
// blue dots over faces taken far in age): how much the change's colour (its
// R-G and B-G, input subtracted) differs between neighbouring pixels, in grey
// levels, averaged over the image. A smooth change of tone scores about 0, and
// so does a change of brightness alone, however sharp (wrinkles, grey hair);
// colour noise scores in proportion to its amplitude (a checkerboard of +-a
// in one channel scores a), a sharp colour edge only along its length. The
// trainer's ctv term penalises the same quantity at 128 pixels, so this too is
// a check of a term, not an independent judge of looks.
export function colourSpeckle(input, output, side) {
  const chroma = new Float32Array(side * side * 2);
  for (let i = 0; i < side * side; i++) {
    const dg = output[i * 3 + 1] - input[i * 3 + 1];
    chroma[i * 2] = output[i * 3] - input[i * 3] - dg;
    chroma[i * 2 + 1] = output[i * 3 + 2] - input[i * 3 + 2] - dg;
  }
  let sum = 0;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const i = (y * side + x) * 2;
      for (let c = 0; c < 2; c++) {
        if (x + 1 < side) sum += Math.abs(chroma[i + c] - chroma[i + 2 + c]);
        if (y + 1 < side) sum += Math.abs(chroma[i + c] - chroma[i + side * 2 + c]);
      }
    }
  }
  return sum / (2 * 2 * side * (side - 1));
}

// Texture by scale, what the grid shows and the columns above do not: faces
// taken to 60+ look mottled rather than wrinkled. The brightness of the
// face's centre (the middle half of the crop) split into three bands by a
// cascade of box blurs (radius 1, 2, 4 pixels): fine (a pixel or two: pores,
// thin lines, grain), mid (3-5 pixels: wrinkles, creases) and coarse (8-15
// pixels: blotches, shading); each the mean absolute detail in grey levels.
// Set against real faces of the target group, a band near 1 has that group's
// amount of detail at that scale. Box blurs keep a linear ramp, so a smooth
// change of tone is no texture.
export function textureBands(rgb, side) {
  const y = new Float32Array(side * side);
  for (let i = 0; i < side * side; i++) y[i] = (rgb[i * 3] + rgb[i * 3 + 1] + rgb[i * 3 + 2]) / 3;
  const box = (a, r) => { // separable, edges clamped
    const t = new Float32Array(a.length), o = new Float32Array(a.length), at = (v) => Math.min(side - 1, Math.max(0, v));
    for (let j = 0; j < side; j++) for (let i = 0; i < side; i++) { let s = 0; for (let k = -r; k <= r; k++) s += a[j * side + at(i + k)]; t[j * side + i] = s / (2 * r + 1); }
    for (let j = 0; j < side; j++) for (let i = 0; i < side; i++) { let s = 0; for (let k = -r; k <= r; k++) s += t[at(j + k) * side + i]; o[j * side + i] = s / (2 * r + 1); }
    return o;
  };
  const b1 = box(y, 1), b2 = box(b1, 2), b3 = box(b2, 4);
  const lo = Math.floor(side / 4), hi = Math.floor((3 * side) / 4), bands = [0, 0, 0];
  for (let j = lo; j < hi; j++) {
    for (let i = lo; i < hi; i++) {
      const k = j * side + i;
      bands[0] += Math.abs(y[k] - b1[k]);
      bands[1] += Math.abs(b1[k] - b2[k]);
      bands[2] += Math.abs(b2[k] - b3[k]);
    }
  }
  return bands.map((b) => b / ((hi - lo) * (hi - lo)));
}
export const TEXTURE_BANDS = ['fine', 'mid', 'coarse'];

// Realism, a two-sample classifier test (Lopez-Paz & Oquab 2017): can a
// simple classifier tell outputs taken to a group from real faces of that
// group? Features of the face's centre (the middle half of the crop): the
// mean colour of each cell of an 8x8 grid, the brightness detail of each
// cell of a 4x4 grid at two scales, and the three texture bands. A logistic
// regression, trained and tested by five-fold cross-validation on equal
// numbers of each side: accuracy 0.5 means it cannot tell them apart. Beside
// it, the same test of the unchanged inputs against the real faces (what
// doing nothing scores) and of real faces against other real faces (the
// floor: what chance and the sample's size allow).
export function realismFeatures(rgb, side) {
  const lo = Math.floor(side / 4), span = Math.floor(side / 2), f = [];
  const y = new Float32Array(side * side);
  for (let i = 0; i < side * side; i++) y[i] = (rgb[i * 3] + rgb[i * 3 + 1] + rgb[i * 3 + 2]) / 3;
  for (const cells of [8]) {
    for (let cy = 0; cy < cells; cy++) {
      for (let cx = 0; cx < cells; cx++) {
        const m = [0, 0, 0];
        let n = 0;
        for (let j = lo + Math.floor((cy * span) / cells); j < lo + Math.floor(((cy + 1) * span) / cells); j++) {
          for (let i = lo + Math.floor((cx * span) / cells); i < lo + Math.floor(((cx + 1) * span) / cells); i++) {
            for (let c = 0; c < 3; c++) m[c] += rgb[(j * side + i) * 3 + c];
            n++;
          }
        }
        f.push(...m.map((v) => v / n / 255));
      }
    }
  }
  for (const step of [1, 3]) {
    const cells = 4;
    for (let cy = 0; cy < cells; cy++) {
      for (let cx = 0; cx < cells; cx++) {
        let s = 0, n = 0;
        for (let j = lo + Math.floor((cy * span) / cells); j < lo + Math.floor(((cy + 1) * span) / cells) - step; j++) {
          for (let i = lo + Math.floor((cx * span) / cells); i < lo + Math.floor(((cx + 1) * span) / cells) - step; i++) {
            s += Math.abs(y[j * side + i] - y[j * side + i + step]) + Math.abs(y[j * side + i] - y[(j + step) * side + i]);
            n += 2;
          }
        }
        f.push(s / n / 255);
      }
    }
  }
  f.push(...textureBands(rgb, side).map((v) => v / 255));
  return f;
}

// A seeded shuffle, so that a run's folds are the same every time.
function shuffled(n, seed) {
  const idx = [...Array(n).keys()];
  let s = seed >>> 0;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx;
}

// Cross-validated accuracy of a logistic regression (features standardised
// on each training fold, L2 penalty) telling set a from set b, each cut to
// the smaller one's size. null when either side has fewer than 20.
export function twoSampleAccuracy(a, b, seed = 1) {
  const n = Math.min(a.length, b.length);
  if (n < 20) return null;
  const pick = (set, sd) => shuffled(set.length, sd).slice(0, n).map((i) => set[i]);
  const xs = [...pick(a, seed), ...pick(b, seed + 7)], ys = [...Array(n).fill(1), ...Array(n).fill(0)];
  const order = shuffled(xs.length, seed + 13), folds = 5, d = xs[0].length;
  let correct = 0;
  for (let k = 0; k < folds; k++) {
    const test = order.filter((_, i) => i % folds === k), train = order.filter((_, i) => i % folds !== k);
    const mu = new Float64Array(d), sd = new Float64Array(d);
    for (const i of train) for (let j = 0; j < d; j++) mu[j] += xs[i][j] / train.length;
    for (const i of train) for (let j = 0; j < d; j++) sd[j] += (xs[i][j] - mu[j]) ** 2 / train.length;
    for (let j = 0; j < d; j++) sd[j] = Math.sqrt(sd[j]) + 1e-6;
    const z = (x) => x.map((v, j) => (v - mu[j]) / sd[j]);
    const zt = train.map((i) => z(xs[i]));
    const w = new Float64Array(d + 1), lambda = 0.01, rate = 0.1;
    for (let it = 0; it < 300; it++) {
      const g = new Float64Array(d + 1);
      zt.forEach((x, r) => {
        let t = w[d];
        for (let j = 0; j < d; j++) t += w[j] * x[j];
        const err = 1 / (1 + Math.exp(-t)) - ys[train[r]];
        for (let j = 0; j < d; j++) g[j] += err * x[j];
        g[d] += err;
      });
      for (let j = 0; j <= d; j++) w[j] -= rate * (g[j] / zt.length + (j < d ? lambda * w[j] : 0));
    }
    for (const i of test) {
      const x = z(xs[i]);
      let t = w[d];
      for (let j = 0; j < d; j++) t += w[j] * x[j];
      if ((t > 0 ? 1 : 0) === ys[i]) correct++;
    }
  }
  return correct / (2 * n);
}

const mean = (xs) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);
const within = (age, [lo, hi]) => age >= lo && age < hi + 1;
const groupOf = (age, ages) => ages.findIndex(([lo, hi]) => age >= lo && age <= hi);
const bandMeans = (list) => TEXTURE_BANDS.map((_, b) => mean(list.filter((v) => v != null).map((v) => v[b])));

// faces: [{ trueAge, inputAge, bands?, outputs: [{ age, distance|null, own?, patch?, speckle?, bands? }] }]; ages: [[lo, hi], ...]
// (own: the shipped estimator's reading of the output, an estimator of ours
// trained on real photos: where it and the judge part, the generator fools it)
export function summarize(faces, ages) {
  const groups = ages.map(([lo, hi], g) => {
    const outs = faces.map((f) => f.outputs[g].age);
    const real = faces.filter((f) => groupOf(f.trueAge, ages) === g).map((f) => f.inputAge);
    return {
      group: `${lo}-${hi >= 120 ? '' : hi}`.replace(/-$/, '+'),
      outputs_mean_age: mean(outs),
      outputs_in_group: mean(outs.map((a) => (within(a, [lo, hi]) ? 1 : 0))),
      outputs_own_age: mean(faces.map((f) => f.outputs[g].own).filter((a) => a != null)),
      outputs_dark_patch: mean(faces.map((f) => f.outputs[g].patch).filter((p) => p != null).map((p) => (p > PATCH_DROP ? 1 : 0))),
      outputs_speckle: mean(faces.map((f) => f.outputs[g].speckle).filter((v) => v != null)),
      outputs_texture: bandMeans(faces.map((f) => f.outputs[g].bands)),
      real_texture: bandMeans(faces.filter((f) => groupOf(f.trueAge, ages) === g).map((f) => f.bands)),
      real_mean_age: mean(real),
      real_in_group: mean(real.map((a) => (within(a, [lo, hi]) ? 1 : 0))),
      real_count: real.length,
    };
  });
  // realism: outputs of inputs from other groups, the unchanged inputs, and real against real (two halves)
  groups.forEach((r, g) => {
    const real = faces.filter((f) => groupOf(f.trueAge, ages) === g && f.features);
    const others = faces.filter((f) => groupOf(f.trueAge, ages) !== g && f.features);
    const outs = others.map((f) => f.outputs[g].features).filter((v) => v);
    const order = shuffled(real.length, 5), half = Math.floor(real.length / 2);
    r.realism = {
      outputs: twoSampleAccuracy(outs, real.map((f) => f.features)),
      inputs: twoSampleAccuracy(others.map((f) => f.features), real.map((f) => f.features)),
      real: twoSampleAccuracy(order.slice(0, half).map((i) => real[i].features), order.slice(half).map((i) => real[i].features)),
    };
  });
  const dists = [];
  for (const f of faces) {
    if (f.trueAge < ADULT) continue;
    ages.forEach(([lo], g) => { if (lo >= ADULT && f.outputs[g].distance != null) dists.push(f.outputs[g].distance); });
  }
  // where the outputs land by the input's own group: big age gaps show apart from small ones
  const by_input_group = ages.map(([lo, hi], i) => {
    const own = faces.filter((f) => groupOf(f.trueAge, ages) === i);
    return { group: groups[i].group, faces: own.length, outputs_mean_age: ages.map((_, g) => mean(own.map((f) => f.outputs[g].age))) };
  });
  return {
    faces: faces.length,
    groups,
    by_input_group,
    identity: {
      pairs: dists.length,
      mean_distance: mean(dists),
      under_0_6: mean(dists.map((d) => (d < 0.6 ? 1 : 0))),
      under_0_5: mean(dists.map((d) => (d < 0.5 ? 1 : 0))),
    },
  };
}

export function table(s) {
  const pct = (x) => `${(100 * x).toFixed(0)} %`;
  const lines = ['| target group | outputs: mean judged age | outputs in group | real faces: mean judged age | real in group | real faces | outputs: ReAge\'s own estimate | outputs with a dark patch | colour speckle (levels) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |'];
  for (const g of s.groups) {
    lines.push(`| ${g.group} | ${g.outputs_mean_age.toFixed(1)} | ${pct(g.outputs_in_group)} | ${g.real_mean_age.toFixed(1)} | ${pct(g.real_in_group)} | ${g.real_count} | ${Number.isNaN(g.outputs_own_age) ? '-' : g.outputs_own_age.toFixed(1)} | ${Number.isNaN(g.outputs_dark_patch) ? '-' : pct(g.outputs_dark_patch)} | ${Number.isNaN(g.outputs_speckle) ? '-' : g.outputs_speckle.toFixed(2)} |`);
  }
  lines.push('', '| input group (true age) | faces | ' + s.groups.map((g) => `to ${g.group}`).join(' | ') + ' |',
    '| --- | --- |' + ' --- |'.repeat(s.groups.length));
  for (const r of s.by_input_group) {
    lines.push(`| ${r.group} | ${r.faces} | ${r.outputs_mean_age.map((a) => (Number.isNaN(a) ? '-' : a.toFixed(1))).join(' | ')} |`);
  }
  const t = (out, real) => (Number.isNaN(out) || Number.isNaN(real) ? '-' : `${out.toFixed(2)} / ${real.toFixed(2)} (${(out / real).toFixed(2)})`);
  lines.push('', '| target group | ' + TEXTURE_BANDS.map((b) => `${b} detail: outputs / real faces (ratio)`).join(' | ') + ' |',
    '| --- |' + ' --- |'.repeat(TEXTURE_BANDS.length));
  for (const g of s.groups) lines.push(`| ${g.group} | ${TEXTURE_BANDS.map((_, b) => t(g.outputs_texture[b], g.real_texture[b])).join(' | ')} |`);
  const acc = (v) => (v == null ? '-' : v.toFixed(2));
  lines.push('', '| target group | realism: outputs vs real faces | unchanged inputs vs real faces | real vs real (floor) |', '| --- | --- | --- | --- |');
  for (const g of s.groups) if (g.realism) lines.push(`| ${g.group} | ${acc(g.realism.outputs)} | ${acc(g.realism.inputs)} | ${acc(g.realism.real)} |`);
  const i = s.identity;
  lines.push('', `Identity, adult inputs (${ADULT}+) to adult groups: mean descriptor distance ${i.mean_distance.toFixed(3)}, ` +
    `${pct(i.under_0_6)} under 0.6, ${pct(i.under_0_5)} under 0.5 (${i.pairs} pairs, ${s.faces} test faces).`);
  return lines.join('\n');
}

async function main() {
  const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
  const weights = arg('--weights', join(root, 'weights/reage.blob'));
  const data = arg('--data', process.env.DATA || join(root, '../shared/data/utkface-part1'));
  const out = arg('--out', join(root, 'weights'));
  const facesFile = arg('--faces', join(root, 'build', 'eval-faces.json'));
  const limit = arg('--limit', '0');
  const method = arg('--method', null);
  mkdirSync(out, { recursive: true });
  mkdirSync(dirname(facesFile), { recursive: true });
  if (!existsSync(join(root, 'build/reage-render'))) {
    console.error('judge: build/reage-render is missing; run make eval (it builds it) or make build/reage-render');
    process.exit(1);
  }
  const judge = await loadJudge();
  const render = spawn(join(root, 'build/reage-render'),
    ['--weights', weights, '--data', data, '--limit', limit, '--grid', join(out, 'eval-grid.jpg'), ...(method ? ['--method', method] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = Buffer.alloc(0), header = null, recordBytes = 0;
  const faces = [];
  const t0 = Date.now();
  for await (const chunk of render.stdout) {
    buf = Buffer.concat([buf, chunk]);
    if (!header) {
      const nl = buf.indexOf(10);
      if (nl < 0) continue;
      header = JSON.parse(buf.subarray(0, nl).toString());
      buf = buf.subarray(nl + 1);
      recordBytes = 20 + 4 * header.groups + (header.groups + 1) * header.side * header.side * 3;
    }
    while (buf.length >= recordBytes) {
      const rec = buf.subarray(0, recordBytes);
      buf = buf.subarray(recordBytes);
      const trueAge = rec.readInt32LE(4), side = header.side, px = side * side * 3, at = 20 + 4 * header.groups;
      const image = (k) => new Uint8Array(rec.buffer.slice(rec.byteOffset + at + k * px, rec.byteOffset + at + (k + 1) * px));
      const input = image(0);
      const face = { trueAge, inputAge: await judge.age(input, side, side), bands: textureBands(input, side), features: realismFeatures(input, side), outputs: [] };
      const inputDesc = trueAge >= ADULT ? await judge.descriptor(input, side, side) : null;
      for (let g = 0; g < header.groups; g++) {
        const img = image(g + 1);
        const adult = inputDesc && header.ages[g][0] >= ADULT;
        face.outputs.push({
          age: await judge.age(img, side, side),
          own: rec.readFloatLE(20 + 4 * g),
          patch: darkestPatch(input, img, side),
          speckle: colourSpeckle(input, img, side),
          bands: textureBands(img, side),
          features: realismFeatures(img, side),
          distance: adult ? judge.distance(inputDesc, await judge.descriptor(img, side, side)) : null,
        });
      }
      faces.push(face);
      if (faces.length % 50 === 0) process.stderr.write(`judged ${faces.length}/${header.count} faces (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
    }
  }
  const code = await new Promise((resolve) => render.on('close', resolve));
  if (code !== 0 || !header) throw new Error(`reage-render failed (exit ${code})`);
  const summary = summarize(faces, header.ages);
  // a path inside the checkout is recorded from its root, so that the committed report names no machine's folders
  const shown = weights.startsWith(root) ? weights.slice(root.length) : weights;
  const report = { date: new Date().toISOString(), weights: shown, method: method ?? 'shipped', limit: Number(limit), calibration: header.calibration ?? null, ...summary };
  writeFileSync(join(out, 'eval.json'), JSON.stringify(report, null, 2) + '\n');
  // the realism features stay out of the per-face file (about 200 numbers an image)
  const slim = faces.map(({ features, outputs, ...f }) => ({ ...f, outputs: outputs.map(({ features: _, ...o }) => o) }));
  writeFileSync(facesFile, JSON.stringify({ weights: shown, ages: header.ages, faces: slim }) + '\n');
  console.log(table(summary));
  console.log(`\nwrote ${join(out, 'eval.json')} and eval-grid.jpg there, and ${facesFile}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => { console.error(`eval: ${e.message}`); process.exit(1); });
}
