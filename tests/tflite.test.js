// The detector's weights come from the pinned npm package at build time:
// converting its .tflite again gives the committed blob byte for byte, and a
// damaged or foreign file is refused with a message, writing nothing.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const pkg = join(root, 'node_modules/@mediapipe/face_detection');
const tflite = join(pkg, 'face_detection_short_range.tflite');
const convert = join(root, 'build/reage-tflite');
const missing = (!existsSync(tflite) && 'npm ci has not installed @mediapipe/face_detection') ||
  (!existsSync(convert) && 'build/reage-tflite is not built');
// a prerequisite that make test builds: missing, every test here fails (never skips)
before(() => assert.ok(!missing, missing));

// Each case ({name: [bytes, message pattern]}) written to a file and converted:
// refused with a message that names the file, and no blob written.
function expectRefused(dir, cases) {
  for (const [name, [data, why]] of Object.entries(cases)) {
    const path = join(dir, name), out = join(dir, `${name}.blob`);
    writeFileSync(path, data);
    const r = spawnSync(convert, [path, out]);
    assert.notEqual(r.status, 0, `${name} is refused`);
    assert.match(r.stderr.toString(), why, `${name}: ${r.stderr}`);
    assert.ok(r.stderr.toString().includes(name), 'the message names the file');
    assert.equal(existsSync(out), false, `${name}: no blob written`);
  }
}

test('converting the package\'s BlazeFace gives the committed blob', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reage-tflite-'));
  const out = join(dir, 'blazeface.blob');
  const version = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).version;
  execFileSync(convert, ['--source', `@mediapipe/face_detection ${version} face_detection_short_range.tflite`, tflite, out]);
  assert.ok(readFileSync(out).equals(readFileSync(join(root, 'weights/blazeface.blob'))), 'same bytes as weights/blazeface.blob');
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
  assert.equal(lock.packages['node_modules/@mediapipe/face_detection'].version, version, 'the lock file pins the converted version');
});

test('the converter lists the operators it reads', () => {
  const list = execFileSync(convert, ['--list', tflite]).toString();
  assert.equal((list.match(/DEPTHWISE_CONV_2D/g) || []).length, 16, '16 BlazeBlocks');
  assert.match(list, /^input 0 input \[1,128,128,3\]/);
  assert.match(list, /output classificators/);
});

test('a damaged or foreign .tflite is refused and nothing is written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reage-tflite-'));
  const bytes = readFileSync(tflite);
  const cases = {
    'cut.tflite': [bytes.subarray(0, 5000), /damaged|outside|operator|tensor/],
    'text.tflite': [Buffer.from('not a model at all, just text'), /not a TFLite model/],
    'other.tflite': [readFileSync(join(pkg, 'face_detection_full_range.tflite')), /BlazeFace|shape|convolutions|more than a face detector/],
  };
  expectRefused(dir, cases);
});

// Face Mesh's landmark network, from the packed assets of @mediapipe/face_mesh.
const meshPkg = join(root, 'node_modules/@mediapipe/face_mesh');

function meshTflite(dir) {
  const out = join(dir, 'face_landmark.tflite');
  execFileSync('node', [join(root, 'tools/packed_asset.mjs'), meshPkg, 'face_landmark.tflite', out]);
  return out;
}

test('converting the package\'s Face Mesh gives the committed blob', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reage-tflite-'));
  const out = join(dir, 'facemesh.blob');
  const version = JSON.parse(readFileSync(join(meshPkg, 'package.json'), 'utf8')).version;
  execFileSync(convert, ['--source', `@mediapipe/face_mesh ${version} face_landmark.tflite`, meshTflite(dir), out]);
  assert.ok(readFileSync(out).equals(readFileSync(join(root, 'weights/facemesh.blob'))), 'same bytes as weights/facemesh.blob');
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
  assert.equal(lock.packages['node_modules/@mediapipe/face_mesh'].version, version, 'the lock file pins the converted version');
});

test('a Face Mesh whose layers do not wire up as the engine runs them is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reage-tflite-'));
  const bytes = readFileSync(meshTflite(dir));
  // the landmark model renamed so that its walk breaks: a layer name the walk looks for no longer exists
  const renamed = Buffer.from(bytes);
  const at = renamed.indexOf(Buffer.from('p_re_lu_19\0'));
  assert.ok(at > 0, 'the model names its layers');
  renamed.write('p_re_lu_99', at);
  const cases = { 'renamed.tflite': [renamed, /p_re_lu_19|no operator writes/] };
  expectRefused(dir, cases);
});
