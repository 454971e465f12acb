// build/reage, the command line: faces found and listed, re-aging writes the
// photo, and every bad request gets a clear message and writes nothing.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { sidewaysJpeg } from './exif.js';

const root = new URL('..', import.meta.url).pathname;
const cli = join(root, 'build/reage');
const sample = join(root, 'web/sample.jpg');
const missing = !existsSync(cli) && 'build/reage is not built';
// a prerequisite that make test builds: missing, every test here fails (never skips)
before(() => assert.ok(!missing, missing));
const run = (...args) => {
  const r = spawnSync(cli, args, { cwd: root });
  return { code: r.status, out: r.stdout.toString(), err: r.stderr.toString() };
};

// A plain grey 64x64 JPEG: a photo with no face in it.
function greyJpeg(path) {
  const w = 64, h = 64;
  writeFileSync(path, jpeg.encode({ data: Buffer.alloc(w * h * 4, 128), width: w, height: h }, 90).data);
}

// The same as a BMP, a format ReAge does not read.
function greyBmp(path) {
  const w = 64, h = 64, row = w * 3, size = 54 + row * h, b = Buffer.alloc(size, 128);
  b.write('BM', 0);
  b.writeUInt32LE(size, 2); b.writeUInt32LE(54, 10); b.writeUInt32LE(40, 14);
  b.writeInt32LE(w, 18); b.writeInt32LE(h, 22); b.writeUInt16LE(1, 26); b.writeUInt16LE(24, 28);
  b.writeUInt32LE(0, 30); b.writeUInt32LE(row * h, 34); b.fill(0, 38, 54);
  writeFileSync(path, b);
}

test('the CLI lists the faces it finds and re-ages the chosen one', () => {
  const list = run(sample);
  assert.equal(list.code, 0, list.err);
  assert.match(list.out, /^face 1: centre \d+,\d+, side \d+, rotated -?[\d.]+ degrees, estimated age \d+$/m);
  const out = join(mkdtempSync(join(tmpdir(), 'reage-cli-')), 'old.png');
  const aged = run('--age', '75', sample, out);
  assert.equal(aged.code, 0, aged.err);
  assert.match(aged.out, /wrote .*old\.png: \d+ -> 75 years/);
  assert.deepEqual([...readFileSync(out).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'a PNG');
});

test('a photo stored sideways with an EXIF orientation is read upright', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reage-cli-'));
  const { bytes, width, height } = sidewaysJpeg(readFileSync(sample));
  const photo = join(dir, 'phone.jpg'), out = join(dir, 'aged.png');
  writeFileSync(photo, bytes);
  const list = run(photo);
  assert.equal(list.code, 0, list.err);
  // upright, the face sits near the top of the taller picture, level
  const m = list.out.match(/^face 1: centre (\d+),(\d+), side \d+, rotated (-?[\d.]+) degrees/m);
  assert.ok(m, list.out);
  assert.ok(Math.abs(Number(m[3])) < 15, `the face is level (${m[3]} degrees)`);
  assert.ok(Number(m[2]) < height / 2 && Math.abs(Number(m[1]) - width / 2) < width / 4, `the face is where it stands upright (${m[1]},${m[2]})`);
  const aged = run('--age', '60', photo, out);
  assert.equal(aged.code, 0, aged.err);
  const png = readFileSync(out);
  assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [width, height], 'the output is upright');
});

test('grey and CMYK JPEGs are read, and a black-and-white photo stays black and white', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reage-cli-'));
  const image = (kind) => join(root, `tests/images/sample-${kind}.jpg`);
  const centre = (kind) => {
    const r = run(image(kind));
    assert.equal(r.code, 0, `${kind}: ${r.err}`);
    const m = r.out.match(/^face 1: centre (\d+),(\d+), side (\d+)/m);
    assert.ok(m, `${kind}: a face is found (${r.out})`);
    return m.slice(1).map(Number);
  };
  const colour = centre('rgb');
  for (const kind of ['grey', 'cmyk']) {
    const c = centre(kind);
    assert.ok(c.every((v, i) => Math.abs(v - colour[i]) <= 3), `${kind}: the face is where it is in colour (${c} vs ${colour})`);
  }
  const out = join(dir, 'old.jpg');
  const aged = run('--age', '75', image('grey'), out);
  assert.equal(aged.code, 0, aged.err);
  const before = jpeg.decode(readFileSync(image('grey')), { useTArray: true }), after = jpeg.decode(readFileSync(out), { useTArray: true });
  let tint = 0, change = 0;
  for (let i = 0; i < after.data.length; i += 4) {
    tint = Math.max(tint, Math.abs(after.data[i] - after.data[i + 1]), Math.abs(after.data[i + 1] - after.data[i + 2]));
    change += Math.abs(after.data[i] - before.data[i]);
  }
  assert.ok(tint <= 2, `the re-aged photo is grey (channels apart by up to ${tint} levels, JPEG's rounding)`);
  assert.ok(change / (after.width * after.height) > 1, `and re-aged (mean change ${(change / (after.width * after.height)).toFixed(2)} levels)`);
});

test('the CLI refuses bad requests with a message and writes nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reage-cli-'));
  const out = join(dir, 'out.png'), wall = join(dir, 'wall.jpg'), bmp = join(dir, 'wall.bmp');
  greyJpeg(wall);
  greyBmp(bmp);
  const cases = [
    [['--face', '3', '--age', '50', sample, out], 1, /--face 3: .* has 1 face/],
    [['--face', '0', sample], 2, /--face: expected a face number/],
    [['--box', '10,10,4', sample], 2, /--box: expected X,Y,SIZE/],
    [['--box', 'nan,100,100', '--age', '50', sample, out], 2, /--box: expected X,Y,SIZE\[,DEGREES\], finite/],
    [['--box', '100,100,100,inf', '--age', '50', sample, out], 2, /--box: expected X,Y,SIZE/],
    [['--box', '100,100,1e30', '--age', '50', sample, out], 2, /--box: expected X,Y,SIZE/],
    [['--all-faces', '--face', '1', sample], 1, /exclude each other/],
    [['--box', '100,100,80', '--face', '2', sample], 1, /not with --box or --no-detect/],
    [['--age', '50', wall, out], 1, /no face found in .*wall\.jpg.*--box/],
    [['--age', '50', bmp, out], 1, /wall\.bmp: not an image this tool can read \(JPEG, PNG\)/],
    [['--detector', join(dir, 'missing.blob'), sample], 1, /missing\.blob/],
    // the page's weights without the generator (make page-models), on a box the mesh finds no face in
    [['--weights', join(root, 'build/page/reage-core.blob'), '--box', '32,32,48', '--age', '60', wall, out], 1,
      /the mesh did not find this face, and these weights carry no generator/],
  ];
  for (const [args, code, why] of cases) {
    const r = run(...args);
    assert.equal(r.code, code, `${args.join(' ')}: exit ${r.code}, ${r.err}`);
    assert.match(r.err, why, args.join(' '));
    assert.equal(existsSync(out), false, `${args.join(' ')} wrote nothing`);
  }
  // a faceless photo can still be re-aged by hand
  const byHand = run('--box', '32,32,48', '--age', '60', wall, out);
  assert.equal(byHand.code, 0, byHand.err);
  assert.ok(existsSync(out));
});
