// build/reage-train end to end on the tiny configuration: a run resumed from
// an older checkpoint rewrites the steps after it, and its log says each step
// once, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const trainer = join(root, 'build/reage-train');
const data = process.env.REAGE_TEST_DATA || join(root, '../shared/data/utkface-part1');
const skip = (!existsSync(trainer) && 'build/reage-train is not built') ||
             (!existsSync(join(data, 'labels.tsv')) && `no data at ${data}`);

test('a resumed run logs each step once', { skip }, () => {
  const out = mkdtempSync(join(tmpdir(), 'reage-train-'));
  const train = (...args) => {
    const r = spawnSync(trainer, ['--config', 'tiny', '--data', data, '--out', out, '--threads', '1', ...args],
                        { cwd: root });
    assert.equal(r.status, 0, r.stderr.toString());
  };
  train('--max-images', '24', '--steps', '20');
  copyFileSync(join(out, 'checkpoint.bin'), join(out, 'step20.bin'));
  train('--resume', '--steps', '40');
  // back to step 20, as when a run dies after its last checkpoint: 30 and 40 come again
  copyFileSync(join(out, 'step20.bin'), join(out, 'checkpoint.bin'));
  train('--resume', '--steps', '40');
  const lines = readFileSync(join(out, 'log.tsv'), 'utf8').trim().split('\n');
  assert.match(lines[0], /^step\timages_per_s\t/);
  assert.deepEqual(lines.slice(1).map((l) => Number(l.split('\t')[0])), [10, 20, 30, 40]);
});
