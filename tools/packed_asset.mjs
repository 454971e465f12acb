// Copies one file out of a MediaPipe solution's packed assets: the package's
// *_packed_assets_loader.js lists each file's byte range in the .data file
// beside it.
//
// usage: node tools/packed_asset.mjs PACKAGE_DIR FILE_NAME OUT
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, name, out] = process.argv.slice(2);
if (!dir || !name || !out) {
  console.error('usage: node tools/packed_asset.mjs PACKAGE_DIR FILE_NAME OUT');
  process.exit(2);
}
try {
  const loader = readdirSync(dir).find((f) => f.endsWith('_packed_assets_loader.js'));
  if (!loader) throw new Error(`${dir}: no *_packed_assets_loader.js`);
  const text = readFileSync(join(dir, loader), 'utf8');
  const entries = [...text.matchAll(/"filename":\s*"([^"]+)",\s*"start":\s*(\d+),\s*"end":\s*(\d+)/g)];
  const hit = entries.find((m) => m[1].endsWith(`/${name}`));
  if (!hit) throw new Error(`${join(dir, loader)} lists no ${name} (it lists ${entries.map((m) => m[1]).join(', ')})`);
  const data = readFileSync(join(dir, loader.replace('_loader.js', '.data')));
  const start = Number(hit[2]), end = Number(hit[3]);
  if (!(start < end && end <= data.length)) throw new Error(`${name}: bytes ${start}-${end} lie outside the .data file`);
  writeFileSync(`${out}.tmp`, data.subarray(start, end));
  renameSync(`${out}.tmp`, out);
} catch (e) {
  console.error(`packed_asset: ${e.message}`);
  process.exit(1);
}
