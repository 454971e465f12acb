// The page in a real browser (Debian's Chromium through playwright-core):
// drop a photo, the face found and boxed, move the slider, compare,
// download, several faces, no face, bad files, a 50-megapixel photo, and no
// request leaving localhost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { existsSync, readFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { sidewaysJpeg } from './exif.js';
import { chromium } from 'playwright-core';

const root = new URL('..', import.meta.url).pathname;
const data = process.env.REAGE_TEST_DATA || join(root, '../shared/data/utkface-part1');
const CHROMIUM = '/usr/bin/chromium';

function testFace() {
  const rows = readFileSync(join(data, 'labels.tsv'), 'utf8').split('\n').filter((l) => l.endsWith('\ttest'));
  return readFileSync(join(data, 'images', rows[0].split('\t')[0]));
}

async function startServer() {
  const server = fork(join(root, 'tools/serve.js'), [], { env: { ...process.env, PORT: '0' }, stdio: 'pipe' });
  const port = await new Promise((resolve, reject) => {
    server.on('message', (m) => resolve(m.port));
    server.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { server, origin: `http://127.0.0.1:${port}` };
}

// Drops bytes on the page's drop zone as a file, the way a person's drag
// would. With a scene ({width, height, places: [[x, y, side], ...]}), the
// image is first pasted at each place into a larger picture with a
// gradient background (a photo with surroundings, or several people),
// saved as scene.type (PNG unless said).
async function dropFile(page, bytes, name, type, scene = null) {
  await page.evaluate(async ({ bytes, name, type, scene }) => {
    let blob = new Blob([new Uint8Array(bytes)], { type });
    if (scene) {
      const face = await createImageBitmap(blob);
      const c = new OffscreenCanvas(scene.width, scene.height), g = c.getContext('2d');
      if (!scene.transparent) {
        const grad = g.createLinearGradient(0, 0, scene.width, scene.height);
        grad.addColorStop(0, '#3a6'); grad.addColorStop(1, '#a53');
        g.fillStyle = grad; g.fillRect(0, 0, scene.width, scene.height);
      }
      for (const [x, y, side] of scene.places) g.drawImage(face, x, y, side, side);
      blob = await c.convertToBlob({ type: scene.type ?? 'image/png', quality: 0.9 });
    }
    const dt = new DataTransfer();
    dt.items.add(new File([blob], name, { type: blob.type }));
    const zone = document.getElementById('drop');
    if (zone.hidden) document.getElementById('another').click();
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, { bytes: [...bytes], name, type, scene });
}

// Sums |after - before| over the pixels where inside(x, y) holds, and over the rest.
function diffs(before, after, width, height, inside) {
  let a = 0, b = 0;
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    const i = 4 * (y * width + x);
    const d = Math.abs(after[i] - before[i]) + Math.abs(after[i + 1] - before[i + 1]) + Math.abs(after[i + 2] - before[i + 2]);
    if (inside(x, y)) a += d; else b += d;
  }
  return [a, b];
}

// Moves the age slider to its oldest end and waits for the re-aged photo.
async function oldest(page) {
  const n = Number(await page.evaluate(() => document.body.dataset.results));
  await page.evaluate(() => {
    const s = document.getElementById('age');
    s.value = s.max;
    // a move of the slider, then its release
    s.dispatchEvent(new Event('input', { bubbles: true }));
    s.dispatchEvent(new Event('change', { bubbles: true }));
  });
  await page.waitForFunction((n) => Number(document.body.dataset.results) > n && document.getElementById('status').hidden, n, { timeout: 60000 });
}

async function pixels(page, id) {
  return page.evaluate((id) => {
    const c = document.getElementById(id);
    return [...c.getContext('2d').getImageData(0, 0, c.width, c.height).data];
  }, id);
}

function launch(extra = []) {
  assert.ok(existsSync(CHROMIUM), 'chromium is not installed: make test installs it as root (apt-get install chromium)');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--no-first-run', '--disable-sync', '--disable-quic', ...extra],
  });
}

test('the page re-ages a dropped photo, offline and private', async () => {
  const { server, origin } = await startServer();
  const browser = await launch();
  try {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${origin}/`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
    const loaded = requests.length;

    const face = testFace();
    // a face with surroundings: found, and its box placed on it
    await dropFile(page, face, 'portrait.png', 'image/png', { width: 400, height: 300, places: [[80, 30, 240]] });
    await page.waitForSelector('body[data-results="1"]', { timeout: 60000 });
    // everything fetched up to the first result (page, engine, weights): at most 3 MB
    const paths = [...new Set(requests.filter((u) => u.startsWith(origin)).map((u) => new URL(u).pathname))];
    const sizes = await Promise.all(paths.map(async (p) => Number((await fetch(origin + p, { method: 'HEAD' })).headers.get('content-length'))));
    const total = sizes.reduce((a, b) => a + b, 0);
    assert.ok(paths.includes('/weights/reage-core.blob') && !paths.includes('/weights/reage-generator.blob'), paths.join(' '));
    assert.ok(total <= 3e6, `the page downloaded ${total} bytes: ${paths.map((p, i) => `${p} ${sizes[i]}`).join(', ')}`);
    console.log(`# the page's download to the first result: ${(total / 1e6).toFixed(2)} MB (${paths.length} files)`);
    assert.equal(await page.evaluate(() => document.body.dataset.faces), '1', 'one face found');
    const box = await page.evaluate(() => {
      const s = document.getElementById('crop').style;
      return { left: parseFloat(s.left) * 4, top: parseFloat(s.top) * 3, side: parseFloat(s.width) * 4 };
    });
    assert.ok(Math.abs(box.left - 80) < 30 && Math.abs(box.top - 30) < 30 && Math.abs(box.side - 240) < 40,
      `the face box lands on the pasted face (left ${box.left}, top ${box.top}, side ${box.side})`);
    const estimate = Number(await page.inputValue('#source'));
    assert.ok(estimate >= 0 && estimate <= 120, `estimated age ${estimate}`);

    await oldest(page);
    const before = await pixels(page, 'before'), after = await pixels(page, 'after');
    // the face space reaches 0.75 of the crop's side from its centre: nothing beyond it may change
    const cx = box.left + box.side / 2, reach = 0.78 * box.side;
    const [outsideDiff] = diffs(before, after, 400, 300, (x) => Math.abs(x + 0.5 - cx) > reach);
    const [faceDiff] = diffs(before, after, 400, 300, (x, y) => x >= 120 && x < 280 && y >= 60 && y < 240);
    assert.equal(outsideDiff, 0, `nothing beyond the face space changed (more than ${reach.toFixed(0)} pixels from x = ${cx.toFixed(0)})`);
    assert.ok(faceDiff / (160 * 180) > 0.1, `the face changed (mean difference ${faceDiff / (160 * 180)})`);
    assert.match(await page.textContent('#timing'), /Re-aged in \d+ ms/);

    mkdirSync(join(root, 'build'), { recursive: true });
    await page.screenshot({ path: join(root, 'build/browser-test.png'), fullPage: true });

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#downloadPng')]);
    const saved = join(root, 'build/browser-download.png');
    await download.saveAs(saved);
    const png = readFileSync(saved);
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'the download is a PNG');

    // two people: a face picker; "All faces" re-ages both, one face only its own
    const results2 = Number(await page.evaluate(() => document.body.dataset.results));
    await dropFile(page, face, 'two.png', 'image/png', { width: 640, height: 300, places: [[30, 60, 200], [400, 40, 210]] });
    await page.waitForFunction((n) => Number(document.body.dataset.results) > n && document.getElementById('status').hidden, results2, { timeout: 60000 });
    assert.equal(await page.evaluate(() => document.body.dataset.faces), '2', 'two faces found');
    assert.equal(await page.locator('#faces button').count(), 3, 'Face 1, Face 2, All faces');
    const left = (x) => x < 320;
    await oldest(page);
    let b2 = await pixels(page, 'before'), a2 = await pixels(page, 'after');
    let [l, r] = diffs(b2, a2, 640, 300, left);
    assert.ok((l > 0) !== (r > 0), `one face changed, not the other (${l}, ${r})`);
    const n2 = Number(await page.evaluate(() => document.body.dataset.results));
    await page.click('#faces button:has-text("All faces")');
    await page.waitForFunction((n) => Number(document.body.dataset.results) > n && document.getElementById('status').hidden, n2, { timeout: 60000 });
    b2 = await pixels(page, 'before');
    a2 = await pixels(page, 'after');
    [l, r] = diffs(b2, a2, 640, 300, left);
    assert.ok(l > 0 && r > 0, 'both faces changed');

    // a phone's photo stored sideways with an EXIF orientation: shown, found and re-aged upright
    const phone = sidewaysJpeg(readFileSync(join(root, 'web/sample.jpg')));
    const results3 = Number(await page.evaluate(() => document.body.dataset.results));
    await dropFile(page, phone.bytes, 'phone.jpg', 'image/jpeg');
    await page.waitForFunction((n) => Number(document.body.dataset.results) > n && document.getElementById('status').hidden, results3, { timeout: 60000 });
    const shown = await page.evaluate(() => { const c = document.getElementById('after'); return [c.width, c.height]; });
    assert.deepEqual(shown, [phone.width, phone.height], 'the photo is shown upright');
    assert.equal(await page.evaluate(() => document.body.dataset.faces), '1', 'the face is found upright');

    // a face on a transparent background: found, re-aged, kept transparent in the PNG and put on white in the JPEG
    const results4 = Number(await page.evaluate(() => document.body.dataset.results));
    await dropFile(page, face, 'cutout.png', 'image/png', { width: 360, height: 300, places: [[80, 40, 200]], transparent: true });
    await page.waitForFunction((n) => Number(document.body.dataset.results) > n && document.getElementById('status').hidden, results4, { timeout: 60000 });
    assert.equal(await page.evaluate(() => document.body.dataset.faces), '1', 'the face on a transparent background is found');
    await oldest(page);
    const corner = await page.evaluate(() => [...document.getElementById('after').getContext('2d').getImageData(5, 5, 1, 1).data]);
    assert.equal(corner[3], 0, 'the re-aged photo keeps its transparency');
    const [jpegDownload] = await Promise.all([page.waitForEvent('download'), page.click('#downloadJpeg')]);
    const flat = join(root, 'build/browser-download.jpg');
    await jpegDownload.saveAs(flat);
    const decoded = jpeg.decode(readFileSync(flat), { useTArray: true });
    assert.ok(decoded.data[0] > 245 && decoded.data[1] > 245 && decoded.data[2] > 245,
      `the JPEG puts the transparent background on white (${decoded.data.subarray(0, 3).join(', ')})`);

    // no face: a message and the hand-placed box
    await page.evaluate(() => { document.body.dataset.faces = ''; });
    await dropFile(page, face, 'wall.png', 'image/png', { width: 320, height: 240, places: [] }); // the background alone
    await page.waitForFunction(() => document.body.dataset.faces === '0', null, { timeout: 60000 });
    assert.match(await page.textContent('#message'), /No face was found/);
    assert.equal(await page.isVisible('#crop'), true, 'the box is there to place by hand');

    // bad files: a message, and the page keeps working
    await dropFile(page, Buffer.from('just some text, renamed\n'), 'notes.jpg', 'image/jpeg');
    await page.waitForSelector('#message:not([hidden])');
    assert.match(await page.textContent('#message'), /not an image/);
    await dropFile(page, face.subarray(0, face.length >> 2), 'cut.jpg', 'image/jpeg');
    await page.waitForFunction(() => /corrupt|cut short/.test(document.getElementById('message').textContent));
    const results = Number(await page.evaluate(() => document.body.dataset.results));
    await dropFile(page, face, 'again.jpg', 'image/jpeg');
    await page.waitForFunction((n) => Number(document.body.dataset.results) > n, results, { timeout: 60000 });
    assert.equal(await page.isHidden('#message'), true, 'a good photo clears the message');

    assert.deepEqual(errors, [], 'no script errors');
    const outside = requests.filter((u) => !u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:'));
    assert.deepEqual(outside, [], 'no request left localhost');
    // after loading, only the generator, fetched for the hand-placed box the mesh cannot trace
    assert.deepEqual(requests.slice(loaded).filter((u) => !u.startsWith('blob:') && !u.endsWith('/weights/reage-generator.blob')), [],
      'no request after loading but the generator\'s');
  } finally {
    await browser.close();
    server.kill();
  }
});

// Drags the slider across its range, one move a frame for `frames` frames,
// and returns the previews drawn meanwhile and the seconds it took.
async function dragSlider(page, frames) {
  return page.evaluate((frames) => new Promise((resolve) => {
    const s = document.getElementById('age'), lo = Number(s.min), hi = Number(s.max);
    const first = Number(document.body.dataset.previews || 0), t0 = performance.now();
    let f = 0;
    const step = () => {
      if (f === frames) {
        resolve({ previews: Number(document.body.dataset.previews || 0) - first, seconds: (performance.now() - t0) / 1000 });
        return;
      }
      s.value = String(Math.round(lo + (hi - lo) * (0.5 + 0.5 * Math.sin(f++ / 9))));
      s.dispatchEvent(new Event('input', { bubbles: true }));
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }), frames);
}

// Cross-origin isolated (as tools/serve.js serves it), the page's engine runs on every core through the
// threaded build; served without isolation, on one through the single-threaded build; the same pixels both ways.
test('the engine runs on all cores where the page may share memory, on one where not, alike', async () => {
  const { server, origin } = await startServer();
  const browser = await launch();
  try {
    const results = [];
    for (const isolated of [true, false]) {
      const page = await browser.newPage();
      const requests = [];
      page.on('request', (r) => requests.push(new URL(r.url()).pathname));
      if (!isolated) {
        await page.route(`${origin}/`, async (route) => {
          const response = await route.fetch(), headers = response.headers();
          delete headers['cross-origin-opener-policy'];
          delete headers['cross-origin-embedder-policy'];
          await route.fulfill({ response, headers });
        });
      }
      await page.goto(`${origin}/`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
      const { threads, cores, iso } = await page.evaluate(() => ({
        threads: Number(document.body.dataset.threads), cores: navigator.hardwareConcurrency, iso: self.crossOriginIsolated }));
      assert.equal(iso, isolated);
      assert.equal(threads, isolated ? Math.min(cores, 8) : 1, `threads with ${cores} cores, ${isolated ? '' : 'not '}isolated`);
      assert.ok(requests.includes(isolated ? '/reage-mt.wasm' : '/reage.wasm') && !requests.includes(isolated ? '/reage.wasm' : '/reage-mt.wasm'),
        requests.filter((r) => r.endsWith('.wasm')).join(' '));
      await dropFile(page, testFace(), 'portrait.png', 'image/png', { width: 400, height: 300, places: [[80, 30, 240]] });
      await page.waitForSelector('body[data-results="1"]', { timeout: 60000 });
      await oldest(page);
      results.push({ threads, after: await pixels(page, 'after'), before: await pixels(page, 'before') });
      await page.close();
    }
    console.log(`# the page's engine: ${results[0].threads} threads cross-origin isolated, ${results[1].threads} otherwise`);
    assert.deepEqual(results[1].before, results[0].before, 'the same photo');
    assert.ok(results[0].after.some((v, i) => v !== results[0].before[i]), 'the face changed');
    const differ = results[0].after.filter((v, i) => v !== results[1].after[i]).length;
    assert.equal(differ, 0, `the threaded page's result is the single-threaded one's (${differ} values differ)`);
  } finally {
    await browser.close();
    server.kill();
  }
});

test('moving the slider shows quick previews of the face; where it stops, the full re-aging', async () => {
  const { server, origin } = await startServer();
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${origin}/`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
    // a 1600x1200 photo: the preview works on a copy 768 pixels wide
    await dropFile(page, testFace(), 'large.jpg', 'image/jpeg', { width: 1600, height: 1200, places: [[450, 200, 750]], type: 'image/jpeg' });
    await page.waitForSelector('body[data-results="1"]', { timeout: 60000 });
    const before = await pixels(page, 'before');
    const { previews, seconds } = await dragSlider(page, 90);
    console.log(`# the slider's preview: ${previews} pictures in ${seconds.toFixed(2)} s while it moved (${(previews / seconds).toFixed(1)} a second)`);
    assert.ok(previews >= 3, `previews were drawn while the slider moved (${previews})`);
    assert.equal(await page.evaluate(() => document.body.dataset.results), '1', 'no full re-aging while the slider moves');
    const moving = await pixels(page, 'after');
    const inFace = (x, y) => x >= 520 && x < 1130 && y >= 270 && y < 920, area = 610 * 650;
    const [faceDiff, restDiff] = diffs(before, moving, 1600, 1200, inFace);
    assert.ok(faceDiff / area > 0.5, `the preview changed the face (mean ${faceDiff / area})`);
    // the face space reaches 0.78 of the box's side from its centre
    const far = diffs(before, moving, 1600, 1200, (x) => Math.abs(x + 0.5 - 825) > 0.8 * 750)[0];
    assert.equal(far, 0, `nothing beyond the face space changed (${restDiff} beside the face in all)`);
    // released: the full re-aging at the slider's age replaces the preview
    await page.evaluate(() => document.getElementById('age').dispatchEvent(new Event('change', { bubbles: true })));
    await page.waitForFunction(() => document.body.dataset.results === '2' && document.getElementById('status').hidden, null, { timeout: 60000 });
    const full = await pixels(page, 'after');
    const [gap] = diffs(moving, full, 1600, 1200, inFace);
    console.log(`# preview against the full re-aging at the same age: mean difference ${(gap / (area * 3)).toFixed(2)} levels over the face`);
    assert.deepEqual(errors, [], 'no script errors');
  } finally {
    await browser.close();
    server.kill();
  }
});

// A video for Chromium's fake camera (Y4M, 4:2:0, full-range BT.601): a test
// face 300 pixels wide on a grey wall, 640x480, a few identical frames.
function faceVideo(path) {
  const face = jpeg.decode(testFace(), { useTArray: true });
  const W = 640, H = 480, X = 170, Y = 90, S = 300, rgb = new Float32Array(W * H * 3).fill(128);
  for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
    const s = 4 * (Math.floor(y * face.height / S) * face.width + Math.floor(x * face.width / S)), d = 3 * ((Y + y) * W + X + x);
    for (let c = 0; c < 3; c++) rgb[d + c] = face.data[s + c];
  }
  const frame = Buffer.alloc(W * H * 3 / 2);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const [r, g, b] = rgb.subarray(3 * (y * W + x), 3 * (y * W + x) + 3);
    frame[y * W + x] = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    if (y % 2 || x % 2) continue;
    const q = (y / 2) * (W / 2) + x / 2;
    frame[W * H + q] = Math.max(0, Math.min(255, Math.round(128 - 0.168736 * r - 0.331264 * g + 0.5 * b)));
    frame[W * H * 5 / 4 + q] = Math.max(0, Math.min(255, Math.round(128 + 0.5 * r - 0.418688 * g - 0.081312 * b)));
  }
  const parts = [Buffer.from(`YUV4MPEG2 W${W} H${H} F10:1 Ip A1:1 C420jpeg\n`)];
  for (let f = 0; f < 4; f++) parts.push(Buffer.from('FRAME\n'), frame);
  writeFileSync(path, Buffer.concat(parts));
  return { X, Y, S };
}

test('the camera: frames re-aged live on the face and nowhere else, and saved on request', async () => {
  mkdirSync(join(root, 'build'), { recursive: true });
  const video = join(root, 'build/camera-test.y4m'), place = faceVideo(video);
  const { server, origin } = await startServer();
  const browser = await launch(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${video}`]);
  try {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    const requests = [], errors = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${origin}/`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
    const loaded = requests.length;
    await page.click('#camera');
    await page.waitForFunction(() => Number(document.body.dataset.liveFrames || 0) >= 3 && /own age read as/.test(document.getElementById('liveInfo').textContent),
      null, { timeout: 60000 });
    // the frames at 80, then at the face's own age (the camera's frame unchanged)
    const grab = () => page.evaluate(() => [...document.getElementById('liveView').getContext('2d').getImageData(0, 0, 640, 480).data]);
    const atAge = async (age) => {
      await page.evaluate((age) => { const s = document.getElementById('liveAge'); s.value = String(age); s.dispatchEvent(new Event('input')); }, age);
      const n = Number(await page.evaluate(() => document.body.dataset.liveFrames));
      await page.waitForFunction((n) => Number(document.body.dataset.liveFrames) >= n + 2, n, { timeout: 60000 });
      return grab();
    };
    const aged = await atAge(80);
    await page.screenshot({ path: join(root, 'build/browser-camera.png') });
    const own = Number(/read as (\d+)/.exec(await page.textContent('#liveInfo'))[1]);
    const raw = await atAge(own);
    const f0 = Number(await page.evaluate(() => document.body.dataset.liveFrames)), t0 = Date.now();
    await page.waitForTimeout(3000);
    const fps = (Number(await page.evaluate(() => document.body.dataset.liveFrames)) - f0) / ((Date.now() - t0) / 1000);
    console.log(`# the camera: ${fps.toFixed(1)} re-aged frames a second at 640x480 (the page says ${await page.evaluate(() => document.body.dataset.liveFps)})`);
    const cx = place.X + place.S / 2, inFace = (x, y) => Math.abs(x - cx) < 90 && Math.abs(y - (place.Y + place.S / 2)) < 100;
    const [faceDiff] = diffs(raw, aged, 640, 480, inFace);
    const [far] = diffs(raw, aged, 640, 480, (x) => Math.abs(x + 0.5 - cx) > 0.8 * place.S);
    assert.ok(faceDiff / (180 * 200) > 2, `the face changed at 80 (mean ${(faceDiff / (180 * 200)).toFixed(2)})`);
    assert.equal(far, 0, 'nothing beyond the face space changed');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#snapshot')]);
    const saved = join(root, 'build/camera-snapshot.png');
    await download.saveAs(saved);
    assert.deepEqual([...readFileSync(saved).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'the snapshot is a PNG');
    await page.click('#stopCamera');
    assert.equal(await page.isVisible('#drop'), true, 'stopped, the drop zone is back');
    assert.deepEqual(errors, [], 'no script errors');
    assert.deepEqual(requests.slice(loaded).filter((u) => !u.startsWith('blob:')), [], 'the camera sends nothing anywhere');
  } finally {
    await browser.close();
    server.kill();
  }
});

test('a 50-megapixel JPEG is scaled to the engine\'s limit, says so, and is re-aged', async () => {
  const { server, origin } = await startServer();
  const browser = await launch();
  try {
    const page = await (await browser.newContext()).newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${origin}/`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
    // 8660 x 5776 = 50.0 megapixels, the face pasted large (as a camera's full-size photo has it)
    const W = 8660, H = 5776, face = [3000, 1400, 2800];
    await dropFile(page, testFace(), 'camera.jpg', 'image/jpeg', { width: W, height: H, places: [face], type: 'image/jpeg' });
    await page.waitForSelector('body[data-results="1"]', { timeout: 300000 });
    const [w, h] = await page.evaluate(() => { const c = document.getElementById('after'); return [c.width, c.height]; });
    assert.ok(w * h <= 24 * 1024 * 1024 && w * h > 0.99 * 24 * 1024 * 1024 && Math.abs(w / h - W / H) < 0.001,
      `scaled to the engine's 24-megapixel limit, its shape kept (${w}x${h})`);
    assert.match(await page.textContent('#message'), new RegExp(`${W}×${H}; it was scaled down to ${w}×${h} to fit in memory`));
    assert.equal(await page.evaluate(() => document.body.dataset.faces), '1', 'the face is found');
    await oldest(page);
    // the mean change over the face's middle, compared in the page (the photo is 100 MB of pixels)
    const k = w / W, [fx, fy, fs] = face.map((v) => Math.round(v * k));
    const change = await page.evaluate(([x, y, s]) => {
      const get = (id) => document.getElementById(id).getContext('2d').getImageData(x + s / 4, y + s / 4, s / 2, s / 2).data;
      const a = get('before'), b = get('after');
      let d = 0;
      for (let i = 0; i < a.length; i += 4) d += Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]);
      return d / (a.length / 4);
    }, [fx, fy, fs]);
    assert.ok(change > 5, `the face is re-aged at full resolution (mean change ${change.toFixed(1)})`);
    assert.deepEqual(errors, [], 'no script errors');
  } finally {
    await browser.close();
    server.kill();
  }
});

test('the server hands out the page and the blobs it loads, and nothing else of weights/', async () => {
  const { server, origin } = await startServer();
  try {
    const status = async (path) => (await fetch(origin + path)).status;
    for (const ok of ['/', '/reage.wasm', '/weights/reage-core.blob', '/weights/reage-generator.blob', '/weights/blazeface.blob', '/weights/facemesh.blob']) {
      assert.equal(await status(ok), 200, ok);
    }
    for (const no of ['/weights/reage.blob', '/weights/checkpoint.bin', '/weights/HISTORY.md', '/weights/train-log.tsv', '/../Makefile', '/%2e%2e/Makefile']) {
      assert.equal(await status(no), 404, no);
    }
  } finally {
    server.kill();
  }
});
