// build/reage-prototypes, which measures the age prototypes into a model blob
// or sets their strengths: bad requests get a clear message and write
// nothing; a new strength or colour cap lands in the blob and the CLI
// re-ages with it.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const tool = join(root, 'build/reage-prototypes'), cli = join(root, 'build/reage');
const shipped = join(root, 'weights/reage.blob');
const missing = [tool, cli].filter((p) => !existsSync(p)).map((p) => `${p} is not built`).join('; ');
before(() => assert.ok(!missing, missing));
const run = (bin, ...args) => {
  const r = spawnSync(bin, args, { cwd: root });
  return { code: r.status, out: r.stdout.toString(), err: r.stderr.toString() };
};

test('reage-prototypes refuses bad requests with a message and writes nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reage-proto-')), out = join(dir, 'out.blob');
  const cases = [
    [['--weights', shipped, '--out', out, '--bogus', '1'], /unknown option --bogus/],
    [['--weights', shipped], /--out is required/],
    [['--weights', shipped, '--out', out, '--strength'], /--strength needs a value/],
    [['--weights', shipped, '--out', out, '--strength', '1,2'], /strength "1,2": want 6 numbers/],
    [['--weights', shipped, '--out', out, '--strength', '1,1,1,1,1,99'], /from 0 to 4/],
    [['--weights', shipped, '--out', out, '--colour-max', '1,1,1'], /colour exaggeration "1,1,1": want 6 numbers/],
    [['--weights', join(dir, 'none.blob'), '--out', out], /none\.blob/],
    [['--weights', shipped, '--out', out, '--data', join(dir, 'no-such-folder')], /no-such-folder.*labels\.tsv|labels\.tsv.*no-such-folder/],
    [['--weights', join(root, 'weights/blazeface.blob'), '--out', out], /blazeface\.blob/],
  ];
  for (const [args, message] of cases) {
    const r = run(tool, ...args);
    assert.notEqual(r.code, 0, `${args.join(' ')} fails`);
    assert.match(r.err, message, `${args.join(' ')}: ${r.err}`);
    assert.ok(!existsSync(out), `${args.join(' ')} wrote nothing`);
  }
});

test('a blob without prototypes cannot be given strengths', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reage-proto-')), bare = join(dir, 'bare.blob');
  // a one-step run warm-started on the checkpoint writes a blob of the generator alone
  const data = process.env.REAGE_TEST_DATA || join(root, '../shared/data/utkface-part1');
  const t = spawnSync(join(root, 'build/reage-train'), ['--config', 'shipped', '--data', data, '--out', dir, '--max-images', '24',
    '--sample-every', '0', '--init-from', join(root, 'weights/checkpoint.bin'), '--steps', '1'], { cwd: root });
  assert.equal(t.status, 0, t.stderr.toString());
  const r = run(tool, '--weights', join(dir, 'reage.blob'), '--out', bare, '--strength', '1,1,1,1,1,1');
  assert.notEqual(r.code, 0);
  assert.match(r.err, /carries no prototypes: measure them with --data/);
  assert.ok(!existsSync(bare));
});

test('a new strength lands in the blob, and the CLI re-ages with it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reage-proto-')), out = join(dir, 'strong.blob');
  const r = run(tool, '--weights', shipped, '--out', out, '--strength', '1.5,1.5,1.5,1.5,1.5,3.25');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /prototypes 0\.\d+ MB, strength 1\.5,1\.5,1\.5,1\.5,1\.5,3\.25/);
  const head = readFileSync(out).subarray(0, 4096).toString('latin1');
  assert.match(head, /proto_strength=1\.5,1\.5,1\.5,1\.5,1\.5,3\.25\n/);
  assert.equal((head.match(/proto_strength=/g) || []).length, 1, 'the old strength is replaced, not repeated');
  // the same tensors otherwise: as long as the shipped blob
  assert.ok(Math.abs(readFileSync(out).length - readFileSync(shipped).length) < 64);
  const aged = join(dir, 'aged.png');
  const c = run(cli, '--weights', out, '--age', '70', join(root, 'web/sample.jpg'), aged);
  assert.equal(c.code, 0, c.err);
  assert.ok(existsSync(aged));
});

test('a colour cap lands in the blob beside the strengths it keeps, and changes the re-aged face', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reage-proto-')), out = join(dir, 'capped.blob');
  const headOf = (file) => readFileSync(file).subarray(0, 4096).toString('latin1');
  const r = run(tool, '--weights', shipped, '--out', out, '--colour-max', '1,1,1,1,1,0.5');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /colour at most 1,1,1,1,1,0\.5/);
  const head = headOf(out);
  assert.match(head, /proto_colour_max=1,1,1,1,1,0\.5\n/);
  assert.equal((head.match(/proto_colour_max=/g) || []).length, 1, 'the old cap is replaced, not repeated');
  assert.equal(head.match(/proto_strength=[^\n]*/)[0], headOf(shipped).match(/proto_strength=[^\n]*/)[0], 'the strengths kept');
  // taken to 70, the colour's change at 60+ is a third of the shipped one's: the faces differ
  const aged = [shipped, out].map((blob, i) => {
    const file = join(dir, `aged${i}.png`);
    const c = run(cli, '--weights', blob, '--age', '70', join(root, 'web/sample.jpg'), file);
    assert.equal(c.code, 0, c.err);
    return readFileSync(file);
  });
  assert.notDeepEqual(aged[0], aged[1]);
});
