// Browser-side benchmark for `make bench`: one face through the generator in
// ReAge's WebAssembly engine (Node.js and headless Chromium) and in ONNX
// Runtime Web (its WASM backend with SIMD) on the same generator exported to
// ONNX (tools/torch_check.py), in one run; face detection against re-aging
// on a 12-megapixel photo; and the page's download size.
// usage: node tools/bench_web.mjs BUILD_DIR   (expects gen128/256.blob there, and .onnx for the comparison)
import { existsSync, readFileSync, statSync, readdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { join } from 'node:path';
import { execFileSync, fork } from 'node:child_process';
import { ReAgeEngine } from '../web/reage.js';

const root = new URL('..', import.meta.url).pathname;
const build = process.argv[2] || join(root, 'build');
const REPS = Number(process.env.BENCH_REPS || 9);
// the page's flows in Chromium, each mode this many times
const PAGE_ROUNDS = Number(process.env.BENCH_PAGE_ROUNDS || 3);
const median = (t) => [...t].sort((a, b) => a - b)[t.length >> 1];

async function timeIt(fn) {
  await fn();
  const t = [];
  for (let r = 0; r < REPS; r++) { const t0 = performance.now(); await fn(); t.push(performance.now() - t0); }
  return median(t);
}

function inputs(res, groups = 6) {
  const face = new Float32Array(3 * res * res).map((_, i) => Math.sin(i * 0.01) * 0.5);
  const gw = new Float32Array(groups);
  gw[3] = 1;
  return { face, gw };
}

const results = {};
function report(name, ms, gflop) {
  results[name] = ms;
  console.log(`CASE ${name} ms=${ms.toFixed(1)}${gflop ? ` gflops=${(gflop / ms * 1e3).toFixed(1)}` : ''}`);
}
// ours against a peer measured in the same run (the peer may be ReAge itself on one thread)
function ratio(name, ours, peer) {
  console.log(`RATIO ${name} ours_ms=${ours.toFixed(1)} peer_ms=${peer.toFixed(1)} speedup=${(peer / ours).toFixed(2)}`);
}

// The page in a new tab, served as tools/serve.js serves it (cross-origin isolated: the threaded engine on every
// core) or with the isolation headers taken off its document (the single-threaded engine); ready to use. name:
// the cases' infix for its threads.
async function openPage(browser, port, isolated) {
  const tab = await browser.newPage();
  if (!isolated) {
    await tab.route(`http://127.0.0.1:${port}/`, async (route) => {
      const response = await route.fetch(), headers = response.headers();
      delete headers['cross-origin-opener-policy'];
      delete headers['cross-origin-embedder-policy'];
      await route.fulfill({ response, headers });
    });
  }
  await tab.goto(`http://127.0.0.1:${port}/`);
  await tab.waitForSelector('body[data-ready="true"]', { timeout: 120000 });
  const threads = Number(await tab.evaluate(() => document.body.dataset.threads));
  return { tab, name: threads > 1 ? `_${threads}thread` : '' };
}

const GFLOP = { 128: 1.431, 256: 5.720 };
const wasm = readFileSync(join(root, 'web/reage.wasm')), wasmThreaded = readFileSync(join(root, 'web/reage-mt.wasm'));
// the engine on one thread (the single-threaded build) or on all cores (the threaded build, as the page runs it)
const CORES = availableParallelism();
const engineOn = (threads) => (threads > 1 ? ReAgeEngine.create(wasmThreaded, { threads }) : ReAgeEngine.create(wasm));
const threadName = (threads) => (threads > 1 ? `_${threads}thread` : '');
console.log(`# ${CORES} cores: the engine on one thread, and its threaded build on ${CORES}`);
for (const res of [128, 256]) {
  for (const threads of [1, CORES]) {
    const e = await engineOn(threads);
    e.load(readFileSync(join(build, `gen${res}.blob`)));
    const { face, gw } = inputs(res);
    report(`wasm_node${threadName(threads)}_gen_fwd_${res}`, await timeIt(() => e.generate(face, gw)), GFLOP[res]);
    e.close();
  }
}

// face detection against re-aging on a 12-megapixel photo, as in
// build/reage-bench infer: a gradient with the sample face pasted 1,500 px
// wide; re-aging by the shipped path (mesh and prototypes) and by the
// generator alone (the path for faces the mesh does not find)
{
  const dir = mkdtempSync(join(tmpdir(), 'reage-bench-'));
  const out = execFileSync(join(root, 'build/reage-parity'), [join(root, 'weights/reage.blob'), join(dir, 'g.f32'),
    join(root, 'weights/blazeface.blob'), join(root, 'web/sample.jpg'), join(dir, 'face.rgba'), join(dir, 'faces.f32')]).toString();
  const [fw, fh] = out.trim().split('\n').pop().split(' ').map(Number);
  const face = readFileSync(join(dir, 'face.rgba'));
  const W = 4000, H = 3000, rgba = new Uint8ClampedArray(W * H * 4);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const i = 4 * (y * W + x);
    rgba[i] = (x * 255 / W) | 0; rgba[i + 1] = (y * 255 / H) | 0; rgba[i + 2] = (x + y) & 255; rgba[i + 3] = 255;
  }
  for (let y = 0; y < 1500; y++) for (let x = 0; x < 1500; x++) {
    const s = 4 * (Math.floor(y * fh / 1500) * fw + Math.floor(x * fw / 1500)), d = 4 * ((650 + y) * W + 1250 + x);
    rgba[d] = face[s]; rgba[d + 1] = face[s + 1]; rgba[d + 2] = face[s + 2];
  }
  for (const threads of [1, CORES]) {
    const e = await engineOn(threads), name = threadName(threads);
    e.load(readFileSync(join(root, 'weights/reage.blob')));
    e.loadDetector(readFileSync(join(root, 'weights/blazeface.blob')));
    const faces = e.detect(rgba, W, H);
    if (threads === 1) console.log(`# 12 MP photo: ${faces.length} face${faces.length === 1 ? '' : 's'} found`);
    const box = faces.length ? faces[0].box : { cx: 2000, cy: 1400, size: 1000, angle: 0 };
    const det = await timeIt(() => e.detect(rgba, W, H));
    // the generator alone (no mesh loaded), then the shipped path: the mesh and the age prototypes
    const gen = await timeIt(() => e.apply(rgba, W, H, [{ box, source: 30 }], 70));
    e.loadMesh(readFileSync(join(root, 'weights/facemesh.blob')));
    const re = await timeIt(() => e.apply(rgba, W, H, [{ box, source: 30 }], 70));
    report(`wasm_node${name}_detect_12mp`, det);
    report(`wasm_node${name}_generator_12mp`, gen);
    report(`wasm_node${name}_reage_12mp`, re);
    if (threads === 1) console.log(`SHARE wasm_node_detect_vs_reage_12mp detect_ms=${det.toFixed(1)} reage_ms=${re.toFixed(1)} share=${(det / re).toFixed(2)} (goal: at most 0.25)`);
    e.close();
  }
  for (const what of ['detect', 'generator', 'reage']) {
    const one = results[`wasm_node_${what}_12mp`], all = results[`wasm_node_${CORES}thread_${what}_12mp`];
    if (CORES > 1) ratio(`wasm_node_${CORES}thread_vs_1thread_${what}_12mp`, all, one);
  }
}

// ONNX Runtime Web on the same generator, where tools/torch_check.py exported it (it needs PyTorch)
const haveOnnx = [128, 256].every((res) => existsSync(join(build, `gen${res}.onnx`)));
if (!haveOnnx) console.log('# no gen128/256.onnx in the build folder (python3-torch exports them): no ONNX Runtime Web comparison');
const ort = haveOnnx ? await import('onnxruntime-web') : null;
for (const threads of haveOnnx ? [1, CORES] : []) {
  ort.env.wasm.numThreads = threads;
  for (const res of [128, 256]) {
    const session = await ort.InferenceSession.create(readFileSync(join(build, `gen${res}.onnx`)), { executionProviders: ['wasm'] });
    const { face, gw } = inputs(res);
    const feeds = { image: new ort.Tensor('float32', face, [1, 3, res, res]), groupw: new ort.Tensor('float32', gw, [1, 6]) };
    report(`ort_web_${threads}thread_gen_fwd_${res}`, await timeIt(() => session.run(feeds)), GFLOP[res]);
    await session.release();
  }
}

// the engine in a real browser tab, through the page's own module
if (process.env.BENCH_CHROMIUM !== '0') {
  const { chromium } = await import('playwright-core');
  const server = fork(join(root, 'tools/serve.js'), [], { env: { ...process.env, PORT: '0' }, stdio: 'pipe' });
  const port = await new Promise((resolve) => server.on('message', (m) => resolve(m.port)));
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'] });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    for (const res of [128, 256]) {
      const blob = [...readFileSync(join(build, `gen${res}.blob`))];
      const ms = await page.evaluate(async ({ blob, res, reps }) => {
        const { ReAgeEngine } = await import('/reage.js');
        const e = await ReAgeEngine.create(await (await fetch('/reage.wasm')).arrayBuffer());
        e.load(new Uint8Array(blob));
        const face = new Float32Array(3 * res * res).map((_, i) => Math.sin(i * 0.01) * 0.5), gw = new Float32Array(6);
        gw[3] = 1;
        e.generate(face, gw);
        const t = [];
        for (let r = 0; r < reps; r++) { const t0 = performance.now(); e.generate(face, gw); t.push(performance.now() - t0); }
        return t.sort((a, b) => a - b)[t.length >> 1];
      }, { blob, res, reps: REPS });
      report(`wasm_chromium_gen_fwd_${res}`, ms, GFLOP[res]);
    }
    // the page itself on a 12-megapixel JPEG (the sample face pasted 1,500 pixels wide): from the drop to
    // the first result (the face found, its age estimated, the photo shown at that age), the slider's
    // previews while it moves (one move a frame), and the full re-aging where it stops
    await page.close();
    // cross-origin isolated as served (the threaded engine on every core) and without isolation (one
    // thread), alternating, each a median over the rounds (one flow is one sample, and the machine is shared)
    const flows = { true: [], false: [] }, names = {};
    for (const isolated of Array.from({ length: 2 * PAGE_ROUNDS }, (_, i) => i % 2 === 0)) {
      const { tab, name } = await openPage(browser, port, isolated); // a fresh tab: none of the engines above in its memory
      const flow = await tab.evaluate(async () => {
        const until = (test) => new Promise((resolve) => { const poll = () => (test() ? resolve() : setTimeout(poll, 2)); poll(); });
        const count = (key) => Number(document.body.dataset[key] || 0);
        const face = await createImageBitmap(await (await fetch('/sample.jpg')).blob());
        const c = new OffscreenCanvas(4000, 3000), g = c.getContext('2d');
        const grad = g.createLinearGradient(0, 0, 4000, 3000);
        grad.addColorStop(0, '#3a6'); grad.addColorStop(1, '#a53');
        g.fillStyle = grad; g.fillRect(0, 0, 4000, 3000);
        g.drawImage(face, 1250, 650, 1500, 1500);
        const file = new File([await c.convertToBlob({ type: 'image/jpeg', quality: 0.92 })], 'photo.jpg', { type: 'image/jpeg' });
        const dt = new DataTransfer();
        dt.items.add(file);
        let t0 = performance.now();
        document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        await until(() => count('results') >= 1);
        const first = performance.now() - t0;
        const s = document.getElementById('age'), lo = Number(s.min), hi = Number(s.max);
        // the first move waits for the preview's planning, which starts after the first result
        t0 = performance.now();
        s.value = String(Math.round((lo + hi) / 2));
        s.dispatchEvent(new Event('input', { bubbles: true }));
        await until(() => count('previews') >= 1);
        const firstPreview = performance.now() - t0;
        const frames = 120, p0 = count('previews');
        t0 = performance.now();
        for (let f = 0; f < frames; f++) {
          s.value = String(Math.round(lo + (hi - lo) * (0.5 + 0.5 * Math.sin(f / 9))));
          s.dispatchEvent(new Event('input', { bubbles: true }));
          await new Promise(requestAnimationFrame);
        }
        const seconds = (performance.now() - t0) / 1000, previews = count('previews') - p0;
        await until(() => document.getElementById('status').hidden && count('previews') >= 1);
        const r0 = count('results');
        t0 = performance.now();
        s.dispatchEvent(new Event('change', { bubbles: true }));
        await until(() => count('results') > r0);
        return { first, firstPreview, perSecond: previews / seconds, full: performance.now() - t0 };
      });
      flows[isolated].push(flow);
      names[isolated] = name;
      await tab.close();
    }
    for (const isolated of [true, false]) {
      const name = names[isolated], m = (key) => median(flows[isolated].map((f) => f[key]));
      report(`chromium_page${name}_drop_to_first_result_12mp`, m('first'));
      report(`chromium_page${name}_first_preview_12mp`, m('firstPreview'));
      report(`chromium_page${name}_release_to_full_result_12mp`, m('full'));
      console.log(`CASE chromium_page${name}_slider_previews_12mp per_second=${m('perSecond').toFixed(1)} (one move a frame; goal: at least 30; median of ${PAGE_ROUNDS})`);
    }
    const all = Object.keys(results).find((k) => /^chromium_page_\d+thread_release/.test(k));
    if (all) {
      const [one, many] = [results.chromium_page_release_to_full_result_12mp, results[all]];
      ratio(all.replace('_release', '_vs_1thread_release'), many, one);
    }
  } finally {
    await browser.close();
    server.kill();
  }
}

// the camera mode in Chromium, on a fake camera playing the sample face 300 pixels wide on a grey wall
// (640x480, Y4M): re-aged frames a second at 70 over 5 seconds
if (process.env.BENCH_CHROMIUM !== '0') {
  const { chromium } = await import('playwright-core');
  const { default: jpeg } = await import('jpeg-js');
  const face = jpeg.decode(readFileSync(join(root, 'web/sample.jpg')), { useTArray: true });
  const W = 640, H = 480, frame = Buffer.alloc(W * H * 3 / 2, 128);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const fx = Math.floor((x - 170) * face.width / 300), fy = Math.floor((y - 90) * face.height / 300);
    const inside = fx >= 0 && fx < face.width && fy >= 0 && fy < face.height, s = 4 * (fy * face.width + fx);
    const [r, g, b] = inside ? [face.data[s], face.data[s + 1], face.data[s + 2]] : [128, 128, 128];
    frame[y * W + x] = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    if (y % 2 || x % 2) continue;
    const q = (y / 2) * (W / 2) + x / 2;
    frame[W * H + q] = Math.max(0, Math.min(255, Math.round(128 - 0.168736 * r - 0.331264 * g + 0.5 * b)));
    frame[W * H * 5 / 4 + q] = Math.max(0, Math.min(255, Math.round(128 + 0.5 * r - 0.418688 * g - 0.081312 * b)));
  }
  const video = join(build, 'bench-camera.y4m');
  writeFileSync(video, Buffer.concat([Buffer.from(`YUV4MPEG2 W${W} H${H} F30:1 Ip A1:1 C420jpeg\n`), ...[0, 1, 2].flatMap(() => [Buffer.from('FRAME\n'), frame])]));
  const server = fork(join(root, 'tools/serve.js'), [], { env: { ...process.env, PORT: '0' }, stdio: 'pipe' });
  const port = await new Promise((resolve) => server.on('message', (m) => resolve(m.port)));
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      `--use-file-for-fake-video-capture=${video}`] });
  try {
    // on every core (cross-origin isolated, as served), then on one
    for (const isolated of [true, false]) {
      const { tab, name } = await openPage(browser, port, isolated);
      await tab.click('#camera');
      await tab.waitForFunction(() => /own age read as/.test(document.getElementById('liveInfo').textContent), null, { timeout: 60000 });
      const f0 = Number(await tab.evaluate(() => document.body.dataset.liveFrames)), t0 = Date.now();
      await tab.waitForTimeout(5000);
      const fps = (Number(await tab.evaluate(() => document.body.dataset.liveFrames)) - f0) / ((Date.now() - t0) / 1000);
      console.log(`CASE chromium_camera${name}_640x480 per_second=${fps.toFixed(1)} (the face followed and re-aged each frame; goal: at least 15)`);
      await tab.close();
    }
  } finally {
    await browser.close();
    server.kill();
  }
}

for (const res of haveOnnx ? [128, 256] : []) {
  for (const threads of [1, CORES]) {
    const peer = results[`ort_web_${threads}thread_gen_fwd_${res}`], ours = results[`wasm_node${threadName(threads)}_gen_fwd_${res}`];
    ratio(`wasm_node_vs_ort_${threads}thread_gen_fwd_${res}`, ours, peer);
  }
}
for (const res of CORES > 1 ? [128, 256] : []) {
  const one = results[`wasm_node_gen_fwd_${res}`], all = results[`wasm_node_${CORES}thread_gen_fwd_${res}`];
  ratio(`wasm_node_${CORES}thread_vs_1thread_gen_fwd_${res}`, all, one);
}

// what the page downloads before its first result (the generator only for a face the mesh cannot trace)
const size = (p) => statSync(join(root, p)).size;
const page = readdirSync(join(root, 'web')).filter((f) => /\.(html|js|css)$/.test(f)).reduce((s, f) => s + size(`web/${f}`), 0);
// (the threaded engine, as a cross-origin isolated page fetches it; the single-threaded one is the same size within 1 %)
const total = page + size('web/reage-mt.wasm') + size('build/page/reage-core.blob') + size('weights/blazeface.blob') + size('weights/facemesh.blob');
console.log(`SIZE page=${page} wasm=${size('web/reage-mt.wasm')} model=${size('build/page/reage-core.blob')} detector=${size('weights/blazeface.blob')} mesh=${size('weights/facemesh.blob')} total=${total} (${(total / 1e6).toFixed(2)} MB; sample photo not counted) generator_on_demand=${size('build/page/reage-generator.blob')}`);
