// The face mesh's speed for `make bench`: ReAge's WebAssembly engine in
// Node.js and in headless Chromium against MediaPipe's own solution
// (@mediapipe/face_mesh, served from node_modules) in the same Chromium, on
// the sample photo. MediaPipe's solution runs detection and the mesh for
// every image it is sent (static image mode), so the ratio sets ReAge's
// detection and mesh together against it; the mesh alone is printed too.
// MediaPipe's image steps run through WebGL, which headless Chromium here
// renders in software (SwiftShader): its time includes that.
// usage: node tools/bench_mesh.mjs
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { extname, join } from 'node:path';
import { chromium } from 'playwright-core';
import { ReAgeEngine } from '../web/reage.js';

const root = new URL('..', import.meta.url).pathname;
const REPS = Number(process.env.BENCH_REPS || 15);
const median = (t) => [...t].sort((a, b) => a - b)[t.length >> 1];
const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.jpg': 'image/jpeg' };

// Node.js: the mesh of the sample photo's face, on the pixels build/reage-parity decodes
const dir = mkdtempSync(join(tmpdir(), 'reage-bench-mesh-'));
const out = execFileSync(join(root, 'build/reage-parity'), [join(root, 'weights/reage.blob'), join(dir, 'g.f32'),
  join(root, 'weights/blazeface.blob'), join(root, 'web/sample.jpg'), join(dir, 'p.rgba'), join(dir, 'f.f32')]).toString();
const [W, H] = out.trim().split('\n').pop().split(' ').map(Number);
const rgba = new Uint8ClampedArray(readFileSync(join(dir, 'p.rgba')));
// on one thread, and the threaded build on every core
const CORES = availableParallelism();
for (const threads of [1, CORES]) {
  const e = threads > 1 ? await ReAgeEngine.create(readFileSync(join(root, 'web/reage-mt.wasm')), { threads })
    : await ReAgeEngine.create(readFileSync(join(root, 'web/reage.wasm')));
  e.loadDetector(readFileSync(join(root, 'weights/blazeface.blob')));
  e.loadMesh(readFileSync(join(root, 'weights/facemesh.blob')));
  const face = e.detect(rgba, W, H)[0];
  const t = [];
  e.mesh(rgba, W, H, face);
  for (let r = 0; r < REPS; r++) { const t0 = performance.now(); e.mesh(rgba, W, H, face); t.push(performance.now() - t0); }
  console.log(`CASE wasm_node${threads > 1 ? `_${threads}thread` : ''}_mesh_face ms=${median(t).toFixed(1)}`);
  e.close();
}

// cross-origin isolated, as the page is served, so that the threaded engine may share its memory
const ISOLATED = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  try {
    if (path === '/') {
      return res.writeHead(200, { 'Content-Type': 'text/html', ...ISOLATED }).end('<!doctype html><script src="/mp/face_mesh.js"></script>');
    }
    const file = path.startsWith('/mp/') ? join(root, 'node_modules/@mediapipe/face_mesh', path.slice(4).replaceAll('..', ''))
      : join(root, path.slice(1).replaceAll('..', ''));
    const body = readFileSync(file);
    res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream', ...ISOLATED }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--use-gl=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist'],
});
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  const r = await page.evaluate(async (reps) => {
    const median = (t) => [...t].sort((a, b) => a - b)[t.length >> 1];
    const img = new Image();
    img.src = '/web/sample.jpg';
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width; c.height = img.height;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const rgba = g.getImageData(0, 0, c.width, c.height).data;
    const { ReAgeEngine } = await import('/web/reage.js');
    const bytes = async (u) => new Uint8Array(await (await fetch(u)).arrayBuffer());
    const time = async (fn) => { await fn(); const t = []; for (let i = 0; i < reps; i++) { const t0 = performance.now(); await fn(); t.push(performance.now() - t0); } return median(t); };
    // ReAge on one thread, then the threaded build on every core the browser reports
    const ours = [];
    for (const threads of [1, navigator.hardwareConcurrency]) {
      const e = threads > 1 ? await ReAgeEngine.create(await bytes('/web/reage-mt.wasm'), { threads }) : await ReAgeEngine.create(await bytes('/web/reage.wasm'));
      e.loadDetector(await bytes('/weights/blazeface.blob'));
      e.loadMesh(await bytes('/weights/facemesh.blob'));
      const face = e.detect(rgba, c.width, c.height)[0];
      const mesh = await time(() => e.mesh(rgba, c.width, c.height, face));
      const pipeline = await time(() => { const f = e.detect(rgba, c.width, c.height)[0]; e.mesh(rgba, c.width, c.height, f); });
      ours.push({ threads: e.threads, mesh, pipeline });
      e.close();
    }
    const fm = new FaceMesh({ locateFile: (f) => `/mp/${f}` });
    fm.setOptions({ maxNumFaces: 1, refineLandmarks: false, staticImageMode: true });
    let found = 0;
    fm.onResults((res) => { found = (res.multiFaceLandmarks || []).length; });
    await fm.initialize();
    const theirs = await time(() => fm.send({ image: c }));
    return { ours, theirs, found };
  }, REPS);
  console.log(`CASE mediapipe_chromium_detect_and_mesh ms=${r.theirs.toFixed(1)} (faces found: ${r.found})`);
  for (const { threads, mesh, pipeline } of r.ours) {
    const name = threads > 1 ? `_${threads}thread` : '';
    console.log(`CASE chromium${name}_mesh_face ms=${mesh.toFixed(1)}`);
    console.log(`CASE chromium${name}_detect_and_mesh ms=${pipeline.toFixed(1)}`);
    console.log(`RATIO mesh_pipeline_chromium_${threads}thread ours_ms=${pipeline.toFixed(1)} peer_ms=${r.theirs.toFixed(1)} ` +
      `speedup=${(r.theirs / pipeline).toFixed(2)}`);
  }
} finally {
  await browser.close();
  server.close();
}
