// build/reage-train end to end on the tiny configuration: a run resumed from
// an older checkpoint rewrites the steps after it, its log says each step
// once, in order, and two processes resumed from one checkpoint end on the
// same bytes (the convolution paths, chosen by timing, travel in the
// checkpoint); a log from an older trainer gains the columns added since.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const trainer = join(root, 'build/reage-train');
const data = process.env.REAGE_TEST_DATA || join(root, '../shared/data/utkface-part1');
const missing = (!existsSync(trainer) && 'build/reage-train is not built') ||
             (!existsSync(join(data, 'labels.tsv')) && `no data at ${data}`);
// a prerequisite that make test builds: missing, every test here fails (never skips)
before(() => assert.ok(!missing, missing));

const runner = (out) => (...args) => {
  const r = spawnSync(trainer, ['--config', 'tiny', '--data', data, '--out', out, '--threads', '1', ...args],
                      { cwd: root });
  assert.equal(r.status, 0, r.stderr.toString());
};

test('a resumed run logs each step once and repeats itself bit for bit', () => {
  const out = mkdtempSync(join(tmpdir(), 'reage-train-'));
  const train = runner(out);
  train('--max-images', '24', '--steps', '20');
  copyFileSync(join(out, 'checkpoint.bin'), join(out, 'step20.bin'));
  train('--resume', '--steps', '40');
  const first = readFileSync(join(out, 'checkpoint.bin'));
  // back to step 20, as when a run dies after its last checkpoint: 30 and 40 come again
  copyFileSync(join(out, 'step20.bin'), join(out, 'checkpoint.bin'));
  train('--resume', '--steps', '40');
  assert.ok(readFileSync(join(out, 'checkpoint.bin')).equals(first), 'the same 20 steps twice give the same checkpoint');
  const lines = readFileSync(join(out, 'log.tsv'), 'utf8').trim().split('\n');
  assert.match(lines[0], /^step\timages_per_s\t/);
  assert.deepEqual(lines.slice(1).map((l) => Number(l.split('\t')[0])), [10, 20, 30, 40]);
});

// logs lose columns from the end as the trainer ages: 13 (before ctv), 14 (before tone), 15 (before age_gap),
// 16 (before shade), 17 (before d_age)
for (const columns of [13, 14, 15, 16, 17]) {
  test(`resuming a log of ${columns} columns adds the newer ones`, () => {
    const out = mkdtempSync(join(tmpdir(), 'reage-train-'));
    const train = runner(out);
    train('--max-images', '24', '--steps', '20');
    const path = join(out, 'log.tsv');
    const full = readFileSync(path, 'utf8').trim().split('\n')[0].split('\t');
    const cut = (l) => l.split('\t').slice(0, columns).join('\t');
    const old = readFileSync(path, 'utf8').trim().split('\n').map(cut);
    writeFileSync(path, old.join('\n') + '\n'); // as an older trainer wrote it
    train('--resume', '--steps', '30');
    const rows = readFileSync(path, 'utf8').trim().split('\n').map((l) => l.split('\t'));
    assert.deepEqual(rows[0], full);
    assert.deepEqual(full.slice(-5), ['ctv', 'tone', 'age_gap', 'shade', 'd_age']);
    assert.ok(rows.every((r) => r.length === full.length), 'every row has every column');
    assert.deepEqual(rows.slice(1).map((r) => r[0]), ['10', '20', '30']);
    assert.ok(rows.slice(1, 3).every((r) => r.slice(columns).every((v) => v === 'nan')), 'old rows: nan in the new columns');
    assert.ok(rows[3].slice(columns).every((v) => Number.isFinite(Number(v))), 'the new step logs every column'); // d_age may be below 0
    assert.deepEqual(rows.slice(1, 3).map((r) => r.slice(0, columns).join('\t')), old.slice(1), 'old rows otherwise unchanged');
  });
}

test('a changed model starts from a plain run\'s checkpoint (--init-from), and only as a new run', () => {
  const plain = mkdtempSync(join(tmpdir(), 'reage-train-'));
  runner(plain)('--max-images', '24', '--steps', '10');
  const grown = mkdtempSync(join(tmpdir(), 'reage-train-'));
  const from = join(plain, 'checkpoint.bin');
  const spawn = (...args) => spawnSync(trainer, ['--config', 'tiny', '--data', data, '--out', grown, '--threads', '1',
                                                 '--max-images', '24', ...args], { cwd: root });
  const r = spawn('--gen-nres', '2', '--steps', '10', '--init-from', from);
  assert.equal(r.status, 0, r.stderr.toString());
  assert.match(r.stdout.toString(), /new: gen\.mod_mlp2\.w, gen\.mod_mlp2\.b, gen\.res1\.conv1\.w, gen\.res1\.conv2\.w\n/);
  const header = readFileSync(join(grown, 'checkpoint.bin')).subarray(0, 4096).toString('latin1');
  assert.match(header, /gen_nres=2\n/);
  const log = readFileSync(join(grown, 'log.tsv'), 'utf8').trim().split('\n');
  assert.deepEqual(log.slice(1).map((l) => l.split('\t')[0]), ['10'], 'a new run: its log starts at step 10');
  // options this version no longer has are unknown to it
  const retired = spawn('--gen-dec-film', '1', '--steps', '10', '--init-from', from);
  assert.notEqual(retired.status, 0);
  assert.match(retired.stderr.toString(), /unknown option --gen-dec-film/);
  for (const [args, why] of [[['--resume'], /--init-from starts a new run/],
                             [['--init-from', join(grown, 'missing.bin')], /missing\.bin/]]) {
    const bad = spawn('--steps', '20', ...(args[0] === '--resume' ? ['--init-from', from, ...args] : args));
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr.toString(), why);
  }
});

test('--init-from starts the weight average where the checkpoint\'s was', () => {
  const plain = mkdtempSync(join(tmpdir(), 'reage-train-'));
  runner(plain)('--max-images', '24', '--steps', '10', '--ema', '0.5');
  const photo = join(data, 'images', readFileSync(join(data, 'labels.tsv'), 'utf8').split('\n')[1].split('\t')[0]);
  const render = (dir) => {
    const out = join(dir, 'aged.png');
    const r = spawnSync(join(root, 'build/reage'), ['--no-detect', '--from', '30', '--age', '70', '--weights',
                                                    join(dir, 'reage.blob'), photo, out], { cwd: root });
    assert.equal(r.status, 0, r.stderr.toString());
    return readFileSync(out);
  };
  const before = render(plain);
  // the live weights, which a new run's average used to start from, give another face
  const live = spawnSync(trainer, ['--config', 'tiny', '--out', plain, '--export-live', join(plain, 'live.blob')], { cwd: root });
  assert.equal(live.status, 0, live.stderr.toString());
  copyFileSync(join(plain, 'live.blob'), join(plain, 'reage.blob'));
  assert.ok(!render(plain).equals(before), 'the average differs from the live weights');
  const out = mkdtempSync(join(tmpdir(), 'reage-train-'));
  runner(out)('--max-images', '24', '--steps', '0', '--ema', '0.5', '--init-from', join(plain, 'checkpoint.bin'));
  assert.ok(render(out).equals(before), 'at step 0 its blob gives the checkpoint\'s average face');
});

test('--export-live writes the checkpoint\'s own model, whatever the command line\'s config says', () => {
  const out = mkdtempSync(join(tmpdir(), 'reage-train-'));
  runner(out)('--max-images', '24', '--steps', '10', '--gen-nres', '2');
  const live = join(out, 'live.blob');
  const r = spawnSync(trainer, ['--config', 'tiny', '--out', out, '--export-live', live], { cwd: root });
  assert.equal(r.status, 0, r.stderr.toString());
  assert.match(r.stdout.toString(), /at step 10, not averaged/);
  const header = readFileSync(live).subarray(0, 1024).toString('latin1');
  assert.match(header, /gen_nres=2\n/);
  assert.match(header, /gen_width=4\n/);
  // a model option that the checkpoint fixes cannot be changed on the way out
  const bad = spawnSync(trainer, ['--config', 'tiny', '--out', out, '--export-live', live, '--gen-nres', '3'], { cwd: root });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr.toString(), /--gen-nres cannot change: .*checkpoint fixes it/);
});
