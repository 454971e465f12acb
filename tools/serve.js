// `make serve`: serves the page (web/) and the shipped weights (weights/) on
// localhost with the right types and headers, and prints the address.
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// what the page loads from weights/ (not the checkpoint, logs or history), and
// the shipped model split in two by `make page-models` (build/page/)
const WEIGHTS = new Set(['blazeface.blob', 'facemesh.blob']);
const PAGE_MODELS = new Set(['reage-core.blob', 'reage-generator.blob']);
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm', '.blob': 'application/octet-stream', '.jpg': 'image/jpeg', '.png': 'image/png',
  '.svg': 'image/svg+xml', '.ico': 'image/x-icon', '.txt': 'text/plain; charset=utf-8', '.md': 'text/plain; charset=utf-8',
};
const HEADERS = {
  'Content-Security-Policy': "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; " +
    "img-src 'self' blob: data:; style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'",
  // cross-origin isolation: lets a future build use WebAssembly threads
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-cache',
};

// /weights/<a blob the page loads> comes from the repository's weights/ or
// build/page/, everything else from web/
function resolve(url) {
  const path = decodeURIComponent(new URL(url, 'http://x').pathname);
  const name = path.startsWith('/weights/') ? path.slice(9) : null;
  if (name !== null && !WEIGHTS.has(name) && !PAGE_MODELS.has(name)) return null;
  const [base, rel] = name === null ? ['web', path.slice(1) || 'index.html'] : [PAGE_MODELS.has(name) ? 'build/page' : 'weights', name];
  const dir = join(root, base);
  const file = normalize(join(dir, rel));
  return file.startsWith(dir + sep) ? file : null;
}

const server = createServer((req, res) => {
  let file = null;
  try { file = resolve(req.url); } catch { /* malformed URL */ }
  let size = -1;
  try { if (file) { const st = statSync(file); if (st.isFile()) size = st.size; } } catch { /* missing */ }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, HEADERS).end();
  } else if (size < 0) {
    res.writeHead(404, { ...HEADERS, 'Content-Type': 'text/plain' }).end('not found\n');
  } else {
    res.writeHead(200, { ...HEADERS, 'Content-Type': TYPES[extname(file)] || 'application/octet-stream', 'Content-Length': size });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).on('error', () => res.destroy()).pipe(res);
  }
});

const host = process.env.HOST || '127.0.0.1';
let port = Number(process.env.PORT || 8000);
server.on('error', (e) => {
  if (e.code === 'EADDRINUSE' && !process.env.PORT && port < 8100) server.listen(++port, host);
  else { console.error(`serve: ${e.message}`); process.exit(1); }
});
server.on('listening', () => {
  const { port: p } = server.address();
  console.log(`ReAge is at http://localhost:${p}/  (Ctrl+C stops it)`);
  if (process.send) process.send({ port: p });
});
server.listen(port, host);
