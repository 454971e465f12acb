// build/reage-train-change, which trains the change net on the prototypes'
// results: bad requests get a clear message and write nothing; a short run
// on a few faces writes a blob the CLI re-ages with, resumes where it
// stopped, and refuses to resume under other options.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const tool = join(root, 'build/reage-train-change'), cli = join(root, 'build/reage'), marks = join(root, 'build/reage-landmarks');
const shipped = join(root, 'weights/reage.blob');
const data = process.env.REAGE_TEST_DATA || join(root, '../shared/data/utkface-part1');
const missing = [tool, cli, marks].filter((p) => !existsSync(p)).map((p) => `${p} is not built`).join('; ') ||
  (!existsSync(join(data, 'labels.tsv')) && `no data at ${data}`);
before(() => assert.ok(!missing, missing));
const run = (bin, ...args) => {
  const r = spawnSync(bin, args, { cwd: root, env: { ...process.env, OMP_NUM_THREADS: '2' } });
  return { code: r.status, out: r.stdout.toString(), err: r.stderr.toString() };
};

test('reage-train-change refuses bad requests with a message and writes nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reage-change-')), out = join(dir, 'out.blob'), runDir = join(dir, 'run');
  const base = ['--weights', shipped, '--run', runDir, '--data', data];
  const cases = [
    [[...base, '--out', out, '--bogus', '1'], /unknown option --bogus/],
    [[...base], /--out is required/],
    [[...base, '--out', out, '--faces', '3'], /--faces \(at least 12\)/],
    [[...base, '--out', out, '--disc-pair', '2'], /--disc-pair 0 or 1/],
    [[...base, '--out', out, '--lr-g', 'fast'], /--lr-g fast: not a number/],
    [[...base, '--out', out, '--steps'], /--steps needs a value/],
    [['--weights', join(dir, 'none.blob'), '--out', out], /none\.blob/],
    [['--weights', join(root, 'weights/blazeface.blob'), '--out', out], /blazeface\.blob/],
    [[...base, '--out', out, '--data', join(dir, 'no-such-folder')], /no-such-folder/],
  ];
  for (const [args, message] of cases) {
    const r = run(tool, ...args);
    assert.notEqual(r.code, 0, `${args.join(' ')} fails`);
    assert.match(r.err, message, `${args.join(' ')}: ${r.err}`);
    assert.ok(!existsSync(out), `${args.join(' ')} wrote nothing`);
  }
});

test('a short run writes a blob the CLI re-ages with, and resumes under the same options only', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reage-change-')), lm = join(dir, 'marks.blob'), runDir = join(dir, 'run');
  const net = join(dir, 'net.blob');
  let r = run(marks, '--data', data, '--out', lm, '--limit', '90');
  assert.equal(r.code, 0, r.err);
  const train = (...extra) => run(tool, '--weights', shipped, '--out', net, '--run', runDir, '--data', data, '--landmarks', lm,
    '--limit', '90', '--faces', '12', '--side', '64', '--width', '4', '--batch', '2', '--every', '2', ...extra);
  r = train('--steps', '2');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /starting at step 0/);
  assert.match(r.err, /step 2: wrote/);
  const head = readFileSync(net).subarray(0, 4096).toString('latin1');
  assert.match(head, /change_side=64\nchange_width=4\n/);
  assert.match(head, /proto_strength=/, 'the prototypes travel with the net');
  assert.ok(existsSync(join(runDir, 'samples.png')));
  // resumed: the faces come from the run's folder, the steps go on from 2
  r = train('--steps', '4');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /resuming at step 2/);
  assert.match(r.err, /12 train faces from .*faces-train-12-64\.bin/);
  assert.match(r.err, /step 4: wrote/);
  // other options: refused by name, the checkpoint kept
  const before = readFileSync(join(runDir, 'checkpoint.bin'));
  r = train('--steps', '6', '--lambda-field', '3');
  assert.notEqual(r.code, 0);
  assert.match(r.err, /started with lambda_field=1, not 3/);
  assert.ok(readFileSync(join(runDir, 'checkpoint.bin')).equals(before));
  // the CLI loads the blob and re-ages through the structured path
  const out = join(dir, 'old.png');
  r = run(cli, '--weights', net, '--age', '75', join(root, 'web/sample.jpg'), out);
  assert.equal(r.code, 0, r.err);
  assert.ok(existsSync(out));
});

test('the evaluation asks for a change net only where the blob has one', () => {
  const render = join(root, 'build/reage-render');
  assert.ok(existsSync(render), 'build/reage-render is not built');
  let r = run(render, '--weights', shipped, '--data', data, '--limit', '1', '--method', 'structured');
  assert.notEqual(r.code, 0);
  assert.match(r.err, /reage\.blob carries no change net/);
  r = run(render, '--weights', shipped, '--data', data, '--limit', '1', '--method', 'bogus');
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--method is gan, prototypes or structured/);
});
