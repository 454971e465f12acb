// The page in a real browser (Debian's Chromium through playwright-core):
// drop a photo, move the slider, compare, download, bad files, and no
// request leaving localhost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { existsSync, readFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
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

// Drops bytes on the page's drop zone as a file, the way a person's drag would.
async function dropFile(page, bytes, name, type, compose = false) {
  await page.evaluate(async ({ bytes, name, type, compose }) => {
    let blob = new Blob([new Uint8Array(bytes)], { type });
    if (compose) {
      // a photo with surroundings: the face pasted into a larger scene
      const face = await createImageBitmap(blob);
      const c = new OffscreenCanvas(400, 300), g = c.getContext('2d');
      const grad = g.createLinearGradient(0, 0, 400, 300);
      grad.addColorStop(0, '#3a6'); grad.addColorStop(1, '#a53');
      g.fillStyle = grad; g.fillRect(0, 0, 400, 300);
      g.drawImage(face, 80, 30, 240, 240);
      blob = await c.convertToBlob({ type: 'image/png' });
    }
    const dt = new DataTransfer();
    dt.items.add(new File([blob], name, { type: blob.type }));
    const zone = document.getElementById('drop');
    if (zone.hidden) document.getElementById('another').click();
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, { bytes: [...bytes], name, type, compose });
}

async function pixels(page, id) {
  return page.evaluate((id) => {
    const c = document.getElementById(id);
    return [...c.getContext('2d').getImageData(0, 0, c.width, c.height).data];
  }, id);
}

test('the page re-ages a dropped photo, offline and private', { skip: !existsSync(CHROMIUM) && 'chromium is not installed' }, async () => {
  const { server, origin } = await startServer();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--no-first-run', '--disable-sync', '--disable-quic'],
  });
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
    await dropFile(page, face, 'portrait.png', 'image/png', true);
    await page.waitForSelector('body[data-results="1"]', { timeout: 60000 });
    const estimate = Number(await page.inputValue('#source'));
    assert.ok(estimate >= 0 && estimate <= 120, `estimated age ${estimate}`);

    // the slider to the oldest age
    await page.evaluate(() => {
      const s = document.getElementById('age');
      s.value = s.max;
      s.dispatchEvent(new Event('input', { bubbles: true }));
    });
    await page.waitForFunction(() => Number(document.body.dataset.results) >= 2 && document.getElementById('status').hidden, null, { timeout: 60000 });
    const before = await pixels(page, 'before'), after = await pixels(page, 'after');
    let faceDiff = 0, outsideDiff = 0;
    for (let y = 0; y < 300; y++) for (let x = 0; x < 400; x++) {
      const i = 4 * (y * 400 + x);
      const d = Math.abs(after[i] - before[i]) + Math.abs(after[i + 1] - before[i + 1]) + Math.abs(after[i + 2] - before[i + 2]);
      if (x < 50 || x >= 350) outsideDiff += d; // the default box is the centred 300x300 square
      else if (x >= 120 && x < 280 && y >= 60 && y < 240) faceDiff += d;
    }
    assert.equal(outsideDiff, 0, 'nothing outside the face box changed');
    assert.ok(faceDiff / (160 * 180) > 0.1, `the face changed (mean difference ${faceDiff / (160 * 180)})`);
    assert.match(await page.textContent('#timing'), /Re-aged in \d+ ms/);

    mkdirSync(join(root, 'build'), { recursive: true });
    await page.screenshot({ path: join(root, 'build/browser-test.png'), fullPage: true });

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#downloadPng')]);
    const saved = join(root, 'build/browser-download.png');
    await download.saveAs(saved);
    const png = readFileSync(saved);
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'the download is a PNG');

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
    assert.deepEqual(requests.slice(loaded).filter((u) => !u.startsWith('blob:')), [], 'no request after loading');
  } finally {
    await browser.close();
    server.kill();
  }
});
