// The engine's thread: loads the WebAssembly module and the weights, holds
// the photo, and answers the page's requests, so that the page never freezes.
import { ReAgeEngine } from './reage.js';

// A tiny module using one SIMD instruction: validates only where WASM SIMD is supported.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

let engine = null;
let photo = null; // { rgba: Uint8ClampedArray, width, height }

async function fetchBytes(url, label) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`Could not load ${label} (${response.status}).`);
  const total = Number(response.headers.get('content-length')) || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let done = 0;
  for (;;) {
    const { value, done: end } = await reader.read();
    if (end) break;
    chunks.push(value);
    done += value.byteLength;
    postMessage({ type: 'progress', label, done, total });
  }
  const bytes = new Uint8Array(done);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.byteLength; }
  return bytes;
}

async function init() {
  if (!WebAssembly.validate(SIMD_PROBE)) {
    throw new Error('This browser does not support WebAssembly SIMD, which ReAge needs. Please use a current Chrome, Edge, Firefox or Safari.');
  }
  // the generator re-ages only faces the mesh cannot trace: fetched when one needs it
  const [wasm, blob, detector, mesh] = await Promise.all([
    fetchBytes('reage.wasm', 'the engine'), fetchBytes('weights/reage-core.blob', 'the model'),
    fetchBytes('weights/blazeface.blob', 'the face detector'), fetchBytes('weights/facemesh.blob', 'the face mesh')]);
  engine = await ReAgeEngine.create(wasm);
  engine.load(blob);
  engine.loadDetector(detector);
  engine.loadMesh(mesh); // detections are confirmed and aligned by the face mesh
  postMessage({ type: 'ready', groups: engine.groups, minAge: engine.minAge, maxAge: engine.maxAge, backend: engine.backend, info: engine.info });
}

const ready = init().catch((e) => postMessage({ type: 'fatal', message: e.message }));

onmessage = async ({ data }) => {
  await ready;
  if (!engine) return;
  try {
    if (data.type === 'photo') {
      // find and align the faces, then estimate each one's age
      photo = { rgba: new Uint8ClampedArray(data.rgba), width: data.width, height: data.height };
      const t0 = performance.now();
      const faces = engine.detect(photo.rgba, photo.width, photo.height);
      const ms = performance.now() - t0;
      for (const f of faces) f.age = engine.estimateAge(photo.rgba, photo.width, photo.height, f.box);
      const fallback = faces.length ? null : { box: data.box, age: engine.estimateAge(photo.rgba, photo.width, photo.height, data.box) };
      postMessage({ type: 'faces', id: data.id, faces, fallback, ms });
    } else if (data.type === 'estimate') {
      postMessage({ type: 'estimate', id: data.id, age: engine.estimateAge(photo.rgba, photo.width, photo.height, data.box) });
    } else if (data.type === 'apply') {
      let t0 = performance.now(), out;
      try {
        out = engine.apply(photo.rgba, photo.width, photo.height, data.faces, data.target);
      } catch (e) {
        if (!e.needsGenerator) throw e;
        engine.loadGenerator(await fetchBytes('weights/reage-generator.blob', 'the generator'));
        t0 = performance.now();
        out = engine.apply(photo.rgba, photo.width, photo.height, data.faces, data.target);
      }
      const ms = performance.now() - t0;
      postMessage({ type: 'result', id: data.id, rgba: out.buffer, width: photo.width, height: photo.height, ms }, [out.buffer]);
    }
  } catch (e) {
    postMessage({ type: 'error', id: data.id, message: e.message });
  }
};
