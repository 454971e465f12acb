// The engine's thread: loads the WebAssembly module and the weights, holds
// the photo, and answers the page's requests, so that the page never freezes.
import { ReAgeEngine } from './reage.js';

// A tiny module using one SIMD instruction: validates only where WASM SIMD is supported.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

let engine = null;
let photo = null; // { rgba: Uint8ClampedArray, width, height }
// The slider's preview: a copy of the photo at most PREVIEW_SIDE on its long
// side, prepared for the faces of `key` (their boxes and ages); scale is the
// copy's size over the photo's; ok, a promise of whether it could be had.
const PREVIEW_SIDE = 768;
// the most threads the engine runs on (its helpers each hold a 1 MB stack and a copy of the engine)
const MAX_THREADS = 8;
let preview = null; // { key, ok, scale, target }
// The camera's face: its crop box, followed from frame to frame by its mesh
// (null: look for one), and its own age, read when it was found.
let live = { box: null, age: 30 };

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
  // all cores where the page may share memory (served cross-origin isolated); one where it may not
  const threads = self.crossOriginIsolated ? Math.min(navigator.hardwareConcurrency || 1, MAX_THREADS) : 1;
  // the generator re-ages only faces the mesh cannot trace: fetched when one needs it
  const [wasm, blob, detector, mesh] = await Promise.all([
    fetchBytes(threads > 1 ? 'reage-mt.wasm' : 'reage.wasm', 'the engine'), fetchBytes('weights/reage-core.blob', 'the model'),
    fetchBytes('weights/blazeface.blob', 'the face detector'), fetchBytes('weights/facemesh.blob', 'the face mesh')]);
  try {
    engine = await ReAgeEngine.create(wasm, { threads });
  } catch (e) {
    if (threads === 1) throw e;
    // no room for a shared memory of the threaded engine's size (a 32-bit browser): the single-threaded one
    engine = await ReAgeEngine.create(await fetchBytes('reage.wasm', 'the engine'));
  }
  engine.load(blob);
  engine.loadDetector(detector);
  engine.loadMesh(mesh); // detections are confirmed and aligned by the face mesh
  postMessage({ type: 'ready', groups: engine.groups, minAge: engine.minAge, maxAge: engine.maxAge, backend: engine.backend, threads: engine.threads, info: engine.info });
}

const ready = init().catch((e) => postMessage({ type: 'fatal', message: e.message }));

async function previewCopy() {
  const k = Math.min(1, PREVIEW_SIDE / Math.max(photo.width, photo.height));
  if (k === 1) return { rgba: photo.rgba, width: photo.width, height: photo.height, scale: 1 };
  const width = Math.max(1, Math.round(photo.width * k)), height = Math.max(1, Math.round(photo.height * k));
  const bitmap = await createImageBitmap(new ImageData(photo.rgba, photo.width, photo.height),
    { resizeWidth: width, resizeHeight: height, resizeQuality: 'high' });
  const g = new OffscreenCanvas(width, height).getContext('2d');
  g.drawImage(bitmap, 0, 0);
  return { rgba: g.getImageData(0, 0, width, height).data, width, height, scale: width / photo.width };
}

// Prepares the preview for these faces unless it is ready; false where it
// cannot be had (no mesh on a face, a box too small at the copy's size).
function previewFor(faces) {
  const key = JSON.stringify(faces);
  if (preview?.key === key) return preview.ok; // prepared, or being prepared
  const p = preview = { key, target: faces[0].source };
  p.ok = (async () => {
    const copy = await previewCopy();
    if (preview !== p) return false; // another photo or other faces meanwhile
    const k = copy.scale;
    const scaled = faces.map(({ box, source }) => ({ box: { cx: box.cx * k, cy: box.cy * k, size: box.size * k, angle: box.angle || 0 }, source }));
    try {
      engine.previewPrepare(copy.rgba, copy.width, copy.height, scaled);
    } catch {
      return false; // the full re-aging serves instead
    }
    p.scale = k;
    planLater(p);
    return true;
  })();
  return p.ok;
}

// Plans the preview's anchors one a turn, nearest the slider's last age
// first, leaving room between them for the page's requests.
function planLater(p) {
  setTimeout(() => {
    if (preview !== p) return;
    try {
      if (engine.previewPlan(p.target) > 0) planLater(p);
    } catch { /* planned when drawn */ }
  }, 0);
}

onmessage = async ({ data }) => {
  await ready;
  if (!engine) return;
  try {
    if (data.type === 'photo') {
      // find and align the faces, then estimate each one's age
      photo = { rgba: new Uint8ClampedArray(data.rgba), width: data.width, height: data.height };
      preview = null;
      const t0 = performance.now();
      const faces = engine.detect(photo.rgba, photo.width, photo.height);
      const ms = performance.now() - t0;
      for (const f of faces) f.age = engine.estimateAge(photo.rgba, photo.width, photo.height, f.box);
      const fallback = faces.length ? null : { box: data.box, age: engine.estimateAge(photo.rgba, photo.width, photo.height, data.box) };
      postMessage({ type: 'faces', id: data.id, faces, fallback, ms });
    } else if (data.type === 'estimate') {
      postMessage({ type: 'estimate', id: data.id, age: engine.estimateAge(photo.rgba, photo.width, photo.height, data.box) });
    } else if (data.type === 'apply') {
      // every face at its own age: the photo as it is (the first result after a drop)
      if (data.faces.every((f) => f.source === data.target)) {
        postMessage({ type: 'result', id: data.id, same: true, width: photo.width, height: photo.height, ms: 0 });
        await previewFor(data.faces);
        return;
      }
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
      await previewFor(data.faces); // ready for the slider's first move
    } else if (data.type === 'camera') {
      live = { box: null, age: 30 };
    } else if (data.type === 'frame') {
      // the face followed by its mesh, found again by the detector when lost; a frame that fails goes back as it came
      const { width, height } = data, rgba = new Uint8ClampedArray(data.rgba);
      try {
        if (!live.box) {
          const [face] = engine.detect(rgba, width, height);
          if (face) live = { box: face.box, age: engine.estimateAge(rgba, width, height, face.box) };
        }
        if (live.box) live.box = engine.frame(rgba, width, height, live.box, live.age, Math.min(Math.max(data.target, 0), 120));
      } catch {
        live.box = null;
      }
      postMessage({ type: 'frame', rgba: rgba.buffer, width, height, found: !!live.box, age: live.age }, [rgba.buffer]);
    } else if (data.type === 'preview') {
      // a move of the slider: the preview where it can be had, else the full re-aging
      const ok = await previewFor(data.faces);
      if (!ok || preview?.key !== JSON.stringify(data.faces)) return onmessage({ data: { ...data, type: 'apply' } });
      const t0 = performance.now();
      preview.target = data.target;
      const part = engine.previewRender(data.target);
      const ms = performance.now() - t0;
      postMessage({ type: 'preview', id: data.id, part, scale: preview.scale, ms }, part ? [part.rgba.buffer] : []);
    }
  } catch (e) {
    postMessage({ type: 'error', id: data.id, message: e.message });
  }
};
