// ReAge's Face Mesh against MediaPipe's own: the npm package's JavaScript
// solution (@mediapipe/face_mesh, its WebAssembly and WebGL graph, here on
// Chromium's software WebGL), served from node_modules to headless Chromium,
// and build/reage --json on the same pixels: the sample photo, and test-split
// faces of ages 2 to 80, both sexes and four ethnicities pasted into larger
// photos, off-centre and tilted up to 25 degrees, where the truth (the
// pasted crop's eyes) is known.
//
// Both run the same landmark network on a square cut the same way from the
// same detector's box (ReAge's box agrees with a single MediaPipe-style pass
// to 1-2 %). On the sample photo the two meshes agree to within 1 % of the
// eye distance. On the pasted faces MediaPipe's solution drifts: its mesh
// is turned by up to half the face's tilt and scaled by up to 15 %, so that
// its eyes lie farther from the truth than ReAge's in every case (0.02-0.13
// of the crop against ReAge's 0.01-0.05). There the test holds ReAge to the
// truth and to MediaPipe's shape (the two meshes after a best similarity
// fit), not to MediaPipe's placement.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { chromium } from 'playwright-core';

const root = new URL('..', import.meta.url).pathname;
const data = process.env.REAGE_TEST_DATA || join(root, '../shared/data/utkface-part1');
const pkg = join(root, 'node_modules/@mediapipe/face_mesh');
const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html', '.jpg': 'image/jpeg' };

// The tolerances, as fractions of the distance between the eyes' outer
// corners (MediaPipe's points 33 and 263): on the sample photo, the mean
// over the 468 points and the largest; on the pasted faces, the mean after a
// similarity fit. And the eyes' distance from the truth, as a fraction of
// the pasted crop's side. The sample's face is small (62 px between the
// eyes) and its worst point jumps with any change of the weights: float16
// kernels put it at 0.9 %, int8 ones at 2.6 %, and int8 in one 8K-weight
// layer alone at 2.4 % (its mean 0.4 -> 0.7 %); the bound allows the int8.
const SAMPLE_MEAN = 0.01, SAMPLE_MAX = 0.03, SHAPE_MEAN = 0.10, EYES_TRUTH = 0.06, EYES_MARGIN = 0.01;
// Where UTKFace's crops put the eyes (src/facedetect.c's FACE_TEMPLATE): the person's right, then left.
const TEMPLATE_EYES = [[0.2837, 0.3022], [0.6940, 0.2913]];
const EYE_CORNERS = [[33, 133], [263, 362]];

// The mean distance between two point sets after the best similarity
// (shift, scale, turn) takes a onto b.
function shapeDistance(a, b) {
  const mean = (P) => [0, 1].map((c) => P.reduce((s, p) => s + p[c], 0) / P.length);
  const ma = mean(a), mb = mean(b);
  let aa = 0, dot = 0, cross = 0;
  a.forEach((p, k) => {
    const ax = p[0] - ma[0], ay = p[1] - ma[1], bx = b[k][0] - mb[0], by = b[k][1] - mb[1];
    aa += ax * ax + ay * ay; dot += ax * bx + ay * by; cross += ax * by - ay * bx;
  });
  const s = dot / aa, r = cross / aa;
  return a.reduce((sum, p, k) => {
    const ax = p[0] - ma[0], ay = p[1] - ma[1];
    return sum + Math.hypot(s * ax - r * ay + mb[0] - b[k][0], r * ax + s * ay + mb[1] - b[k][1]);
  }, 0) / a.length;
}

// The farther eye's distance from the truth, as a fraction of the crop's side.
function eyesFromTruth(points, [, , cx, cy, side, deg]) {
  const a = deg * Math.PI / 180;
  return Math.max(...[0, 1].map((k) => {
    const x = (TEMPLATE_EYES[k][0] - 0.5) * side, y = (TEMPLATE_EYES[k][1] - 0.5) * side;
    const [i, j] = EYE_CORNERS[k];
    const ex = (points[i][0] + points[j][0]) / 2, ey = (points[i][1] + points[j][1]) / 2;
    return Math.hypot(ex - (cx + Math.cos(a) * x - Math.sin(a) * y), ey - (cy + Math.sin(a) * x + Math.cos(a) * y)) / side;
  }));
}

// Test-split faces: ages 2 to 80, both sexes, four ethnicities (the name is
// age_sex_race), each placed in a scene: [width, height, centre x, centre y,
// side, degrees].
const CASES = [
  ['2_0_0_20161219162259070.jpg.chip.jpg', [480, 400, 240, 200, 300, 0]],
  ['8_1_3_20161220220642802.jpg.chip.jpg', [560, 420, 330, 210, 280, 12]],
  ['17_0_2_20170105183230223.jpg.chip.jpg', [500, 500, 250, 260, 300, -25]],
  ['29_1_1_20170103183648691.jpg.chip.jpg', [520, 400, 220, 210, 280, 25]],
  ['36_0_2_20170104165035320.jpg.chip.jpg', [600, 450, 380, 230, 290, -10]],
  ['45_1_3_20170104235059987.jpg.chip.jpg', [450, 600, 225, 280, 320, 18]],
  ['47_0_1_20170109004328399.jpg.chip.jpg', [560, 560, 280, 280, 340, -18]],
  ['61_1_2_20170105174916768.jpg.chip.jpg', [640, 420, 250, 210, 290, 8]],
  ['70_0_0_20170111201153097.jpg.chip.jpg', [520, 440, 270, 220, 300, -22]],
  ['80_1_0_20170109142913604.jpg.chip.jpg', [600, 600, 320, 300, 360, 0]],
];

function serve() {
  const page = '<!doctype html><meta charset="utf-8"><script src="/mp/face_mesh.js"></script><body></body>';
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    try {
      if (path === '/') return res.writeHead(200, { 'Content-Type': 'text/html' }).end(page);
      const file = path.startsWith('/mp/') ? join(pkg, path.slice(4).replaceAll('..', ''))
        : path === '/sample.jpg' ? join(root, 'web/sample.jpg')
          : path.startsWith('/faces/') ? join(data, 'images', path.slice(7).replaceAll('..', '')) : null;
      const body = readFileSync(file);
      res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

test('the face mesh agrees with MediaPipe\'s own solution on the sample photo, and on ten pasted test faces lies nearer the truth', async () => {
  const server = await serve();
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--use-gl=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist'],
  });
  const dir = mkdtempSync(join(tmpdir(), 'reage-mediapipe-'));
  const report = [];
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.evaluate(async () => {
      window.mesh = new FaceMesh({ locateFile: (f) => `/mp/${f}` });
      window.mesh.setOptions({ maxNumFaces: 1, refineLandmarks: false, staticImageMode: true, minDetectionConfidence: 0.5 });
      window.mesh.onResults((r) => { window.result = r; });
      await window.mesh.initialize();
    });
    const scenes = [['web/sample.jpg', null], ...CASES];
    for (const [name, scene] of scenes) {
      // the scene drawn in the page, sent to MediaPipe, and its pixels back as a PNG for ReAge
      const out = await page.evaluate(async ({ url, scene }) => {
        const img = new Image();
        img.src = url;
        await img.decode();
        const [W, H, cx, cy, side, deg] = scene || [img.width, img.height, img.width / 2, img.height / 2, 0, 0];
        const c = document.createElement('canvas');
        c.width = W; c.height = H;
        const g = c.getContext('2d');
        if (scene) {
          const grad = g.createLinearGradient(0, 0, W, H);
          grad.addColorStop(0, '#5a7f96'); grad.addColorStop(1, '#c8b49a');
          g.fillStyle = grad; g.fillRect(0, 0, W, H);
          g.translate(cx, cy); g.rotate(deg * Math.PI / 180);
          g.drawImage(img, -side / 2, -side / 2, side, side);
        } else {
          g.drawImage(img, 0, 0);
        }
        window.result = null;
        await window.mesh.send({ image: c });
        const faces = (window.result && window.result.multiFaceLandmarks) || [];
        const png = await new Promise((r) => c.toBlob(r, 'image/png'));
        return {
          W, H, png: [...new Uint8Array(await png.arrayBuffer())],
          points: faces.length ? faces[0].map((p) => [p.x * W, p.y * H]) : null,
        };
      }, { url: scene ? `/faces/${name}` : '/sample.jpg', scene });
      assert.ok(out.points, `${name}: MediaPipe finds the face`);
      const file = join(dir, `${report.length}.png`);
      writeFileSync(file, Buffer.from(out.png));
      const ours = JSON.parse(execFileSync(join(root, 'build/reage'), ['--json', '--face', '1', file], { cwd: root }).toString());
      assert.equal(ours.faces.length, 1, `${name}: ReAge finds the face`);
      const pts = ours.faces[0].points, theirs = out.points;
      const iod = Math.hypot(theirs[33][0] - theirs[263][0], theirs[33][1] - theirs[263][1]);
      const errs = theirs.map((p, k) => Math.hypot(pts[k][0] - p[0], pts[k][1] - p[1]) / iod);
      report.push({
        name, scene, iod, mesh: ours.faces[0].mesh,
        mean: errs.reduce((a, b) => a + b, 0) / errs.length, max: Math.max(...errs),
        shape: shapeDistance(pts, theirs) / iod,
        ours: scene && eyesFromTruth(pts, scene), theirs: scene && eyesFromTruth(theirs, scene),
      });
    }
  } finally {
    await browser.close();
    server.close();
  }
  const pct = (v) => `${(100 * v).toFixed(1)} %`;
  console.log(report.map((r) => `${r.name}: from MediaPipe's, mean ${pct(r.mean)} and max ${pct(r.max)} of the ` +
    `${r.iod.toFixed(0)} px between the eyes, ${pct(r.shape)} after a similarity fit` +
    (r.scene ? `; eyes from the truth: ReAge ${r.ours.toFixed(3)}, MediaPipe ${r.theirs.toFixed(3)} of the side` : '')).join('\n'));
  const [sample, ...pasted] = report;
  assert.ok(sample.mean < SAMPLE_MEAN && sample.max < SAMPLE_MAX,
    `the sample photo: mean ${pct(sample.mean)}, max ${pct(sample.max)} of the eye distance from MediaPipe's`);
  for (const r of report) assert.ok(r.mesh > 0.9, `${r.name}: ReAge's mesh sees a face (${r.mesh})`);
  for (const r of pasted) {
    assert.ok(r.shape < SHAPE_MEAN, `${r.name}: the shapes agree to ${pct(r.shape)} of the eye distance`);
    assert.ok(r.ours < EYES_TRUTH && r.ours < r.theirs + EYES_MARGIN,
      `${r.name}: ReAge's eyes ${r.ours.toFixed(3)} of the side from the truth (MediaPipe's ${r.theirs.toFixed(3)})`);
  }
});
