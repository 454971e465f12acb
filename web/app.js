// The page: drop a photo, place the face box, pick an age, compare, download.
// All computing happens in worker.js; this file only draws and listens.
const $ = (id) => document.getElementById(id);
const MAX_FILE_BYTES = 60 * 1024 * 1024;
const MAX_PIXELS = 24 * 1024 * 1024; // the engine's limit; larger photos are scaled down

const worker = new Worker(new URL('worker.js', import.meta.url), { type: 'module' });
const state = { ready: false, photo: null, box: null, source: 30, target: 30, busy: false, pending: false, request: 0, split: 0.5 };

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
      document.body.dataset.ready = 'true';
      if (state.photo) sendPhoto();
      break;
    }
    case 'fatal':
      status('');
      message(data.message);
      break;
    case 'estimate':
      if (data.id !== state.request) break;
      state.source = Math.round(data.age);
      $('source').value = state.source;
      if (document.body.dataset.touched !== 'true') setTarget(state.source);
      render();
      break;
    case 'result':
      state.busy = false;
      if (state.pending) { state.pending = false; render(); }
      else status('');
      drawResult(data);
      $('timing').textContent = `Re-aged in ${Math.round(data.ms)} ms, on this device.`;
      document.body.dataset.results = String(Number(document.body.dataset.results || 0) + 1);
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
    bitmap = await createImageBitmap(file);
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
  state.photo = { width, height, name: file.name.replace(/\.[^.]+$/, '') || 'photo' };
  const side = Math.min(width, height);
  state.box = { cx: width / 2, cy: height / 2, size: side };
  document.body.dataset.touched = 'false';
  message(note);
  show($('drop'), false);
  show($('work'), true);
  placeBox();
  placeDivider();
  if (state.ready) sendPhoto(); else status('Loading the model…');
}

function sendPhoto() {
  const { width, height } = state.photo;
  const rgba = $('before').getContext('2d').getImageData(0, 0, width, height).data;
  state.request++;
  status('Estimating the age…');
  worker.postMessage({ type: 'photo', id: state.request, rgba: rgba.buffer, width, height, box: state.box }, [rgba.buffer]);
}

function render() {
  if (!state.ready || !state.photo) return;
  if (state.busy) { state.pending = true; return; }
  state.busy = true;
  status('Re-aging…');
  worker.postMessage({ type: 'apply', id: state.request, box: state.box, source: state.source, target: state.target });
}

function drawResult({ rgba, width, height }) {
  if (!state.photo || width !== state.photo.width) return;
  $('after').getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
}

// ---- the face box and the before/after divider ----

function placeBox() {
  const { width, height } = state.photo, b = state.box, crop = $('crop').style;
  crop.left = `${((b.cx - b.size / 2) / width) * 100}%`;
  crop.top = `${((b.cy - b.size / 2) / height) * 100}%`;
  crop.width = `${(b.size / width) * 100}%`;
  crop.height = `${(b.size / height) * 100}%`;
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
  const { width, height } = state.photo, b = state.box;
  b.size = Math.max(32, Math.min(b.size, Math.max(width, height) * 1.5));
  b.cx = Math.max(0, Math.min(width, b.cx));
  b.cy = Math.max(0, Math.min(height, b.cy));
}

function boxChanged() {
  state.request++;
  worker.postMessage({ type: 'estimate', id: state.request, box: state.box });
}

drag($('crop'), (dx, dy) => {
  const k = stageScale();
  state.box.cx += dx * k;
  state.box.cy += dy * k;
  clampBox();
  placeBox();
}, boxChanged);
drag($('handle'), (dx, dy) => {
  const k = stageScale(), grow = Math.max(dx, dy) * k;
  state.box.cx += grow / 2;
  state.box.cy += grow / 2;
  state.box.size += grow;
  clampBox();
  placeBox();
}, boxChanged);
drag($('divider'), (dx, dy, e) => {
  const r = $('stage').getBoundingClientRect();
  state.split = Math.max(0, Math.min(1, (e.clientX - r.left) / r.width));
  placeDivider();
});

// ---- controls ----

$('age').addEventListener('input', (e) => { document.body.dataset.touched = 'true'; setTarget(e.target.value); render(); });
$('source').addEventListener('change', (e) => {
  const v = Number(e.target.value);
  if (Number.isFinite(v) && v >= 0 && v <= 120) { state.source = v; render(); } else e.target.value = state.source;
});
$('showCrop').addEventListener('change', (e) => show($('crop'), e.target.checked));
$('another').addEventListener('click', () => { show($('work'), false); show($('drop'), true); state.photo = null; message(''); });

function download(type) {
  $('after').toBlob((blob) => {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `${state.photo.name}-age-${state.target}.${type === 'image/png' ? 'png' : 'jpg'}`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }, type, 0.92);
}
$('downloadPng').addEventListener('click', () => download('image/png'));
$('downloadJpeg').addEventListener('click', () => download('image/jpeg'));

$('file').addEventListener('change', (e) => { if (e.target.files[0]) loadFile(e.target.files[0]); e.target.value = ''; });
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
