// build/reage-calibrate on the shipped blob with a tiny sample: the copy it
// writes carries one non-decreasing conditioning age per group and the same
// tensors byte for byte; bad requests get a message and write nothing.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const tool = join(root, 'build/reage-calibrate');
const blob = join(root, 'weights/reage.blob');
const data = process.env.REAGE_TEST_DATA || join(root, '../shared/data/utkface-part1');
const missing = (!existsSync(tool) && 'build/reage-calibrate is not built') ||
             (!existsSync(join(data, 'labels.tsv')) && `no data at ${data}`);
// a prerequisite that make test builds: missing, every test here fails (never skips)
before(() => assert.ok(!missing, missing));
const run = (...args) => {
  const r = spawnSync(tool, args, { cwd: root });
  return { code: r.status, out: r.stdout.toString(), err: r.stderr.toString() };
};

// The blob's config text and everything after it (the tensors, less the checksum).
function parts(path) {
  const b = readFileSync(path), n = b.readUInt32LE(12);
  return { config: b.subarray(16, 16 + n).toString(), tensors: b.subarray(16 + n, b.length - 4) };
}

test('the calibrated copy adds one line and keeps the weights', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'reage-cal-')), 'cal.blob');
  const r = run('--weights', blob, '--data', data, '--out', out, '--faces', '2', '--steps', '1', '--passes', '1');
  assert.equal(r.code, 0, r.err);
  const before = parts(blob), after = parts(out);
  const lines = after.config.split('\n').filter((l) => l.startsWith('age_calibration='));
  assert.equal(lines.length, 1, after.config);
  const ages = lines[0].slice('age_calibration='.length).split(',').map(Number);
  const groups = before.config.match(/^group_ages=(.*)$/m)[1].split(',').length;
  assert.equal(ages.length, groups);
  for (let g = 1; g < ages.length; g++) assert.ok(ages[g] >= ages[g - 1], `non-decreasing: ${ages}`);
  assert.ok(ages[0] >= 4.5 && ages[ages.length - 1] <= 69.5, `within the centres: ${ages}`);
  assert.equal(after.config.replace(/^age_calibration=.*\n/m, ''), before.config.replace(/^age_calibration=.*\n/m, ''));
  assert.ok(after.tensors.equals(before.tensors), 'tensors copied byte for byte');
  assert.match(r.out, /wrote .*cal\.blob with age_calibration=/);
});

test('reage-calibrate refuses bad requests and writes nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reage-cal-')), out = join(dir, 'cal.blob');
  const cases = [
    [['--weights', blob, '--data', data], 2, /--out are required/],
    [['--weights', blob, '--data', data, '--out', out, '--faces', '0'], 2, /--faces '0'/],
    [['--weights', blob, '--data', data, '--out', out, '--steps', 'x'], 2, /--steps 'x'/],
    [['--weights', blob, '--data', data, '--out', out, '--bogus'], 2, /unknown or incomplete option '--bogus'/],
    [['--weights', join(dir, 'none.blob'), '--data', data, '--out', out], 1, /none\.blob/],
    [['--weights', blob, '--data', join(dir, 'no-data'), '--out', out], 1, /no-data/],
    [['--weights', join(root, 'weights/blazeface.blob'), '--data', data, '--out', out], 1, /blazeface\.blob/],
  ];
  for (const [args, code, message] of cases) {
    const r = run(...args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, message);
    assert.ok(!existsSync(out), `${args.join(' ')} wrote nothing`);
  }
});
