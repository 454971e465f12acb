// The page: drop a photo, (the faces are found and aligned), pick an age,
// compare, download. The face box is the engine's aligned crop; the hand
// only corrects it. All computing happens in worker.js; this file only draws
// and listens.
import { createCamera } from './camera.js';

const $ = (id) => document.getElementById(id);
const MAX_FILE_BYTES = 60 * 1024 * 1024;
const MAX_PIXELS = 24 * 1024 * 1024; // the engine's limit; larger photos are scaled down

const worker = new Worker(new URL('worker.js', import.meta.url), { type: 'module' });
// faces: [{box: {cx, cy, size, angle}, age}], one per detected face (or the
// hand-placed box when none was found); selected: its index, or -1 for all.
const state = { ready: false, photo: null, faces: [], selected: 0, target: 30, busy: false, pending: false, request: 0, split: 0.5 };
const current = () => state.faces[Math.max(state.selected, 0)];

function show(el, on) { el.hidden = !on; }
function message(text) { $('message').textContent = text || ''; show($('message'), !!text); }
function status(text, fraction) {
  show($('status'), !!text);
  $('statusText').textContent = text || '';
  const bar = $('progress');
  if (fraction === undefined) bar.removeAttribute('value'); else bar.value = fraction;
}

worker.onmessage = ({ data }) => {
  switch (data.type) {
    case 'frame':
      camera.onFrame(data);
      break;
    case 'progress':
      status(`Loading ${data.label}… ${(data.done / 1e6).toFixed(1)} MB`, data.total ? data.done / data.total : undefined);
      break;
    case 'ready': {
      state.ready = true;
      const age = $('age');
      age.min = data.minAge;
      age.max = data.maxAge;
      status('');
      const steps = /trained_steps:(\d+)/.exec(data.info);
      if (steps) $('modelInfo').textContent = ` (${Number(steps[1]).toLocaleString('en')} training steps)`;
      document.body.dataset.threads = data.threads; // the engine's threads, for tests and benchmarks
      document.body.dataset.ready = 'true';
      $('camera').disabled = false;
      $('liveAge').min = data.minAge;
      $('liveAge').max = data.maxAge;
      if (state.photo) sendPhoto();
      break;
    }
    case 'fatal':
      status('');
      message(data.message);
      break;
    case 'faces': {
      if (data.id !== state.request) break;
      status('');
      let found;
      if (data.faces.length) {
        state.faces = data.faces.map((f) => ({ box: f.box, age: Math.round(f.age) }));
        found = data.faces.length > 1 ? `Found ${data.faces.length} faces: pick one below, or re-age them all.` : '';
      } else {
        state.faces = [{ box: data.fallback.box, age: Math.round(data.fallback.age) }];
        found = 'No face was found in this photo. Place the square on the face by hand: eyes on the upper line, mouth on the lower one.';
      }
      // the note that the photo was scaled down stays beside what was found
      message([state.photo.note, found].filter(Boolean).join(' '));
      document.body.dataset.faces = String(data.faces.length);
      selectFace(0);
      if (document.body.dataset.touched !== 'true') setTarget(current().age);
      render();
      break;
    }
    case 'estimate':
      if (data.id !== state.request) break;
      current().age = Math.round(data.age);
      $('source').value = current().age;
      render();
      break;
    case 'result':
      state.busy = false;
      if (state.pending) { state.pending = false; render(state.pendingKind); }
      else status('');
      // a result for the photo before this one (dropped while it was computed) is not drawn over this one
      if (data.id !== state.request) break;
      drawResult(data);
      $('timing').textContent = `Re-aged in ${Math.round(data.ms)} ms, on this device.`;
      document.body.dataset.results = String(Number(document.body.dataset.results || 0) + 1);
      break;
    case 'preview':
      state.busy = false;
      if (state.pending) { state.pending = false; render(state.pendingKind); }
      if (data.id !== state.request) break;
      drawPreview(data);
      document.body.dataset.previews = String(Number(document.body.dataset.previews || 0) + 1);
      break;
    case 'error':
      state.busy = false;
      status('');
      message(data.message);
      break;
  }
};

function setTarget(age) {
  state.target = Number(age);
  $('age').value = age;
  $('ageValue').textContent = `${age} years`;
}

// ---- loading a photo ----

const SIGNATURES = [[0xff, 0xd8, 0xff], [0x89, 0x50, 0x4e, 0x47], [0x47, 0x49, 0x46], [0x42, 0x4d], [0x52, 0x49, 0x46, 0x46]];
function looksLikeImage(bytes) {
  return SIGNATURES.some((sig) => sig.every((b, i) => bytes[i] === b));
}

async function loadFile(file) {
  message('');
  if (file.size > MAX_FILE_BYTES) return message(`This file is ${(file.size / 1e6).toFixed(0)} MB; ReAge takes photos up to ${MAX_FILE_BYTES / 1e6} MB.`);
  const head = new Uint8Array(await file.slice(0, 8).arrayBuffer());
  let bitmap;
  try {
    // turned upright as its EXIF orientation says (the default in today's browsers, asked for all the same)
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    return message(looksLikeImage(head)
      ? `“${file.name}” looks like an image but could not be decoded: it may be corrupt or cut short.`
      : `“${file.name}” is not an image ReAge can read. Try a JPEG or PNG photo.`);
  }
  let { width, height } = bitmap;
  let note = '';
  if (width * height > MAX_PIXELS) {
    const k = Math.sqrt(MAX_PIXELS / (width * height));
    note = `This photo is ${width}×${height}; it was scaled down to ${Math.floor(width * k)}×${Math.floor(height * k)} to fit in memory.`;
    width = Math.floor(width * k);
    height = Math.floor(height * k);
  }
  const before = $('before'), after = $('after');
  for (const c of [before, after]) { c.width = width; c.height = height; }
  const ctx = before.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0, width, height);
  after.getContext('2d').drawImage(before, 0, 0);
  state.photo = { width, height, note, name: file.name.replace(/\.[^.]+$/, '') || 'photo' };
  const side = Math.min(width, height);
  state.faces = [{ box: { cx: width / 2, cy: height / 2, size: side, angle: 0 }, age: 30 }];
  state.selected = 0;
  document.body.dataset.touched = 'false';
  document.body.dataset.faces = '';
  message(note);
  show($('drop'), false);
  show($('work'), true);
  drawFaces();
  placeDivider();
  if (state.ready) sendPhoto(); else status('Loading the model…');
}

function sendPhoto() {
  const { width, height } = state.photo;
  const rgba = $('before').getContext('2d').getImageData(0, 0, width, height).data;
  // a transparent photo's colour composited on white for the engine, so that the detector sees a
  // transparent background as white; the alpha itself goes through unchanged
  for (let i = 3; i < rgba.length; i += 4) {
    const a = rgba[i];
    if (a < 255) for (let k = i - 3; k < i; k++) rgba[k] = (rgba[k] * a + 255 * (255 - a) + 127) / 255;
  }
  state.request++;
  status('Finding faces…');
  worker.postMessage({ type: 'photo', id: state.request, rgba: rgba.buffer, width, height, box: current().box }, [rgba.buffer]);
}

// kind 'apply' re-ages the photo at its full resolution; 'preview' (while
// the slider moves) draws a quick approximation of the face on a small copy
function render(kind = 'apply') {
  if (!state.ready || !state.photo) return;
  // one request at a time; the latest waiting one, a full one over a preview
  if (state.busy) { state.pendingKind = state.pending && state.pendingKind === 'apply' ? 'apply' : kind; state.pending = true; return; }
  state.busy = true;
  if (kind === 'apply') status('Re-aging…');
  const faces = (state.selected < 0 ? state.faces : [current()]).map((f) => ({ box: f.box, source: f.age }));
  worker.postMessage({ type: kind, id: state.request, faces, target: state.target });
}

// A preview's changed region, drawn over the photo at the photo's scale.
const previewCanvas = document.createElement('canvas');
function drawPreview({ part, scale }) {
  if (!part) return;
  previewCanvas.width = part.width;
  previewCanvas.height = part.height;
  previewCanvas.getContext('2d').putImageData(new ImageData(part.rgba, part.width, part.height), 0, 0);
  // the photo as it was under the region, then the preview's changed pixels over it
  const g = $('after').getContext('2d');
  const x = Math.floor(part.x0 / scale), y = Math.floor(part.y0 / scale);
  const w = Math.ceil((part.x0 + part.width) / scale) - x, h = Math.ceil((part.y0 + part.height) / scale) - y;
  g.clearRect(x, y, w, h);
  g.drawImage($('before'), x, y, w, h, x, y, w, h);
  g.imageSmoothingQuality = 'high';
  g.drawImage(previewCanvas, part.x0 / scale, part.y0 / scale, part.width / scale, part.height / scale);
}

function drawResult({ rgba, width, height, same }) {
  if (!state.photo || width !== state.photo.width) return;
  const g = $('after').getContext('2d');
  if (same) {
    g.clearRect(0, 0, width, height);
    g.drawImage($('before'), 0, 0);
  } else g.putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
}

// ---- the face box and the before/after divider ----

// The selected face's box is the one that can be dragged; the other faces
// show as numbered outlines that select their face when clicked.
function placeBox(el, box) {
  const { width, height } = state.photo, st = el.style;
  st.left = `${((box.cx - box.size / 2) / width) * 100}%`;
  st.top = `${((box.cy - box.size / 2) / height) * 100}%`;
  st.width = `${(box.size / width) * 100}%`;
  st.height = `${(box.size / height) * 100}%`;
  st.transform = `rotate(${box.angle || 0}rad)`;
}

function drawFaces() {
  const layer = $('others');
  layer.replaceChildren();
  state.faces.forEach((f, i) => {
    if (i === state.selected) return;
    const el = document.createElement('button');
    el.type = 'button';
    el.className = 'other';
    el.textContent = String(i + 1);
    el.title = `Face ${i + 1}: click to choose it`;
    el.addEventListener('click', () => { selectFace(i); render(); });
    placeBox(el, f.box);
    layer.append(el);
  });
  show($('crop'), state.selected >= 0);
  placeBox($('crop'), current().box);
  const picker = $('faces');
  picker.replaceChildren();
  show(picker, state.faces.length > 1);
  if (state.faces.length > 1) {
    const add = (label, i) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.setAttribute('aria-pressed', String(state.selected === i));
      b.addEventListener('click', () => { selectFace(i); render(); });
      picker.append(b);
    };
    state.faces.forEach((_, i) => add(`Face ${i + 1}`, i));
    add('All faces', -1);
  }
}

function selectFace(i) {
  state.selected = i;
  const all = i < 0;
  $('source').disabled = all;
  $('source').value = all ? '' : current().age;
  $('source').placeholder = all ? 'each' : '';
  drawFaces();
}

function placeDivider() {
  $('divider').style.left = `${state.split * 100}%`;
  $('after').style.clipPath = `inset(0 0 0 ${state.split * 100}%)`;
}

function stageScale() { return state.photo.width / $('stage').getBoundingClientRect().width; }

function drag(el, onMove, onEnd) {
  el.addEventListener('pointerdown', (e) => {
    e.preventDefault();
    e.stopPropagation();
    el.setPointerCapture(e.pointerId);
    let last = { x: e.clientX, y: e.clientY };
    const move = (m) => { onMove(m.clientX - last.x, m.clientY - last.y, m); last = { x: m.clientX, y: m.clientY }; };
    const up = () => { el.removeEventListener('pointermove', move); el.removeEventListener('pointerup', up); onEnd?.(); };
    el.addEventListener('pointermove', move);
    el.addEventListener('pointerup', up);
  });
}

function clampBox() {
  const { width, height } = state.photo, b = current().box;
  b.size = Math.max(32, Math.min(b.size, Math.max(width, height) * 1.5));
  b.cx = Math.max(0, Math.min(width, b.cx));
  b.cy = Math.max(0, Math.min(height, b.cy));
}

function boxChanged() {
  state.request++;
  worker.postMessage({ type: 'estimate', id: state.request, box: current().box });
}

drag($('crop'), (dx, dy) => {
  const k = stageScale(), b = current().box;
  b.cx += dx * k;
  b.cy += dy * k;
  clampBox();
  placeBox($('crop'), b);
}, boxChanged);
// the corner handle grows the box along its (possibly rotated) diagonal,
// keeping the opposite corner in place
drag($('handle'), (dx, dy) => {
  const k = stageScale(), b = current().box, a = b.angle || 0;
  const ux = (Math.cos(a) - Math.sin(a)) / Math.SQRT2, uy = (Math.sin(a) + Math.cos(a)) / Math.SQRT2;
  const along = (dx * ux + dy * uy) * k, grow = along * Math.SQRT2;
  b.cx += (ux * along) / 2;
  b.cy += (uy * along) / 2;
  b.size += grow;
  clampBox();
  placeBox($('crop'), b);
}, boxChanged);
drag($('divider'), (dx, dy, e) => {
  const r = $('stage').getBoundingClientRect();
  state.split = Math.max(0, Math.min(1, (e.clientX - r.left) / r.width));
  placeDivider();
});

// ---- controls ----

// while the slider moves, previews follow the hand; where it stops, the full re-aging
$('age').addEventListener('input', (e) => { document.body.dataset.touched = 'true'; setTarget(e.target.value); render('preview'); });
$('age').addEventListener('change', () => render('apply'));
$('source').addEventListener('change', (e) => {
  const v = Number(e.target.value);
  if (Number.isFinite(v) && v >= 0 && v <= 120) { current().age = v; render(); } else e.target.value = current().age;
});
$('showCrop').addEventListener('change', (e) => $('stage').classList.toggle('bare', !e.target.checked));
$('another').addEventListener('click', () => { show($('work'), false); show($('drop'), true); state.photo = null; message(''); });

function download(type) {
  // a JPEG has no transparency: the photo goes on white (a canvas would put it on black)
  let canvas = $('after');
  if (type === 'image/jpeg') {
    const flat = document.createElement('canvas');
    flat.width = canvas.width;
    flat.height = canvas.height;
    const g = flat.getContext('2d');
    g.fillStyle = '#fff';
    g.fillRect(0, 0, flat.width, flat.height);
    g.drawImage(canvas, 0, 0);
    canvas = flat;
  }
  saveCanvas(canvas, `${state.photo.name}-age-${state.target}.${type === 'image/png' ? 'png' : 'jpg'}`, type);
}

// Saves a canvas as a file download (PNG, or JPEG at quality 0.92).
function saveCanvas(canvas, name, type) {
  canvas.toBlob((blob) => {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }, type, 0.92);
}
$('downloadPng').addEventListener('click', () => download('image/png'));
$('downloadJpeg').addEventListener('click', () => download('image/jpeg'));

$('file').addEventListener('change', (e) => { if (e.target.files[0]) loadFile(e.target.files[0]); e.target.value = ''; });
const camera = createCamera(worker, { message, show, saveCanvas });
$('camera').addEventListener('click', () => camera.start());

// fetched with the page, so that nothing is requested once it has loaded
const sample = fetch('sample.jpg').then((r) => r.blob()).catch(() => null);
$('sample').addEventListener('click', async () => {
  const blob = await sample;
  if (blob) loadFile(new File([blob], 'sample.jpg', { type: 'image/jpeg' }));
  else message('The sample photo could not be loaded.');
});
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  if (e.dataTransfer.files[0]) loadFile(e.dataTransfer.files[0]);
});
status('Loading the model…');
