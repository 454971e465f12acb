// Browser-side benchmark for `make bench`: one face through the generator in
// ReAge's WebAssembly engine (Node.js and headless Chromium) and in ONNX
// Runtime Web (its WASM backend with SIMD) on the same generator exported to
// ONNX (tools/torch_check.py), in one run. Also the page's download size.
// usage: node tools/bench_web.mjs BUILD_DIR   (expects gen128/256.blob and .onnx there)
import { readFileSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fork } from 'node:child_process';
import { ReAgeEngine } from '../web/reage.js';

const root = new URL('..', import.meta.url).pathname;
const build = process.argv[2] || join(root, 'build');
const REPS = Number(process.env.BENCH_REPS || 9);
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

const GFLOP = { 128: 1.431, 256: 5.720 };
const wasm = readFileSync(join(root, 'web/reage.wasm'));
for (const res of [128, 256]) {
  const e = await ReAgeEngine.create(wasm);
  e.load(readFileSync(join(build, `gen${res}.blob`)));
  const { face, gw } = inputs(res);
  report(`wasm_node_gen_fwd_${res}`, await timeIt(() => e.generate(face, gw)), GFLOP[res]);
}

const ort = await import('onnxruntime-web');
for (const threads of [1, 2]) {
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
  } finally {
    await browser.close();
    server.kill();
  }
}

for (const res of [128, 256]) {
  for (const threads of [1, 2]) {
    const peer = results[`ort_web_${threads}thread_gen_fwd_${res}`], ours = results[`wasm_node_gen_fwd_${res}`];
    console.log(`RATIO wasm_node_vs_ort_${threads}thread_gen_fwd_${res} ours_ms=${ours.toFixed(1)} peer_ms=${peer.toFixed(1)} speedup=${(peer / ours).toFixed(2)}`);
  }
}

const size = (p) => statSync(join(root, p)).size;
const page = readdirSync(join(root, 'web')).filter((f) => /\.(html|js|css)$/.test(f)).reduce((s, f) => s + size(`web/${f}`), 0);
const total = page + size('web/reage.wasm') + size('weights/reage.blob');
console.log(`SIZE page=${page} wasm=${size('web/reage.wasm')} blob=${size('weights/reage.blob')} total=${total} (${(total / 1e6).toFixed(2)} MB; sample photo not counted)`);
