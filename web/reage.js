// The engine's tiny JS wrapper: instantiates web/reage.wasm (a standalone
// module built from the same C as the native tools) and moves pixels and
// weights in and out of its memory. Used by the page's worker and by tests.

// The threaded build's memory (web/reage-mt.wasm imports it, shared): its
// initial and largest size in 64 KiB pages, as the Makefile's EMCC_FLAGS
// build it (INITIAL_MEMORY, MAXIMUM_MEMORY).
const MEMORY_PAGES = { initial: 1024, maximum: 32768 };
// each helper thread's stack
const HELPER_STACK = 1 << 20;

// What the module imports: its memory where it is the threaded build's
// (shared, made by the engine), and a hook the engine has no use for. One
// list for the engine and its helper threads (web/reage-thread.js).
export function engineImports(memory) {
  return { env: { emscripten_notify_memory_growth: () => {}, ...(memory ? { memory } : {}) } };
}

export class ReAgeEngine {
  // wasmBytes: web/reage.wasm, or web/reage-mt.wasm with threads: the
  // number of threads to use (helpers started besides the caller's, at most
  // 16 in all), which needs shared memory (a cross-origin isolated page, or
  // Node.js); on a single-threaded build it changes nothing. The caller
  // never blocks: it spins while the helpers finish a loop's last ranges.
  static async create(wasmBytes, { threads = 1 } = {}) {
    const module = await WebAssembly.compile(wasmBytes);
    const shared = WebAssembly.Module.imports(module).some((i) => i.kind === 'memory');
    const memory = shared ? new WebAssembly.Memory({ ...MEMORY_PAGES, shared: true }) : null;
    const instance = await WebAssembly.instantiate(module, engineImports(memory));
    instance.exports._initialize();
    const engine = new ReAgeEngine(instance.exports, memory || instance.exports.memory);
    if (shared && threads > 1) await engine.#startHelpers(module, Math.min(threads, 16));
    return engine;
  }

  constructor(exports, memory) {
    this.x = exports;
    this.memory = memory;
  }

  // The helpers: further instances of the module on the same memory, each on
  // its own thread with its own stack (allocated for the engine's life),
  // waiting for work. Where one fails to start, the engine keeps to one thread.
  #helpers = [];
  async #startHelpers(module, threads) {
    const url = new URL('./reage-thread.js', import.meta.url);
    const Thread = globalThis.process?.versions?.node
      ? await import('node:worker_threads').then(({ Worker }) => (u) => { const w = new Worker(u); w.unref(); return w; })
      : (u) => new Worker(u, { type: 'module' });
    const started = [];
    for (let t = 1; t < threads; t++) {
      const stack = this.x.reage_malloc(HELPER_STACK);
      if (!stack) break;
      const w = Thread(url);
      this.#helpers.push(w);
      started.push(new Promise((resolve) => {
        const ok = () => resolve(true), bad = () => resolve(false);
        if (w.on) { w.once('message', ok); w.once('error', bad); } else { w.onmessage = ok; w.onerror = bad; }
      }));
      w.postMessage({ module, memory: this.memory, stack: (stack + HELPER_STACK) & ~15, thread: t });
    }
    if ((await Promise.all(started)).every(Boolean) && started.length === threads - 1) this.x.reage_set_threads(threads);
    else this.close();
  }

  // The threads the engine uses (1 without helpers).
  get threads() { return this.x.reage_threads(); }

  // Stops the helper threads (the engine goes on with one).
  close() {
    this.x.reage_set_threads(1);
    this.#helpers.forEach((w) => w.terminate());
    this.#helpers = [];
  }

  get backend() { return this.#string(this.x.reage_backend()); }

  // A copy of n bytes of the module's memory at ptr, in an ArrayBuffer of
  // its own (never the shared memory itself, which pixels must not leave in).
  #copy(ptr, n) { return new Uint8Array(this.memory.buffer, ptr, n).slice().buffer; }

  #string(ptr) {
    const bytes = new Uint8Array(this.memory.buffer, ptr);
    return new TextDecoder().decode(bytes.slice(0, bytes.indexOf(0)));
  }

  // Copies a typed array into the module's heap; the caller frees it.
  #put(array) {
    const ptr = this.x.reage_malloc(array.byteLength || 1);
    if (!ptr) throw new Error('the engine is out of memory');
    new Uint8Array(this.memory.buffer, ptr, array.byteLength)
      .set(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
    return ptr;
  }

  #fail() { throw new Error(this.#string(this.x.reage_error())); }

  // faces [{box, source}] as the engine takes them: 6 floats each, the crop
  // (cx cy size angle), the face's own age and the target (its own age when null)
  static #faceSpec(faces, target) {
    const spec = new Float32Array(faces.length * 6);
    faces.forEach(({ box, source }, i) => spec.set([box.cx, box.cy, box.size, box.angle || 0, source, target ?? source], i * 6));
    return spec;
  }

  // The photo lives in the module's memory once: the same pixels (the same
  // array, unchanged) passed again are not copied again, so that finding the
  // faces, estimating ages and every move of the slider share one copy.
  #photo = { source: null, ptr: 0, len: 0, result: 0 };
  #photoPtr(rgba) {
    const p = this.#photo;
    if (p.source === rgba && p.len === rgba.byteLength) return p.ptr;
    this.#dropPhoto();
    p.ptr = this.#put(rgba);
    p.source = rgba;
    p.len = rgba.byteLength;
    return p.ptr;
  }
  #dropPhoto() {
    const p = this.#photo;
    if (p.ptr) this.x.reage_free(p.ptr);
    if (p.result) this.x.reage_free(p.result);
    Object.assign(p, { source: null, ptr: 0, len: 0, result: 0 });
  }

  // Hands a blob (ArrayBuffer or Uint8Array) to one of the engine's loaders;
  // throws with the engine's message on a bad one, which keeps the previous.
  #loadWith(loader, blob) {
    const bytes = blob instanceof Uint8Array ? blob : new Uint8Array(blob);
    const ptr = this.#put(bytes);
    const rc = loader(ptr, bytes.byteLength);
    this.x.reage_free(ptr);
    if (rc !== 0) this.#fail();
  }

  // Loads a weight blob (the age estimator, the age prototypes, and the
  // generator unless the blob leaves it for loadGenerator).
  load(blob) {
    this.#loadWith(this.x.reage_load, blob);
    this.res = this.x.reage_res();
    this.groups = [];
    for (let g = 0; g < this.x.reage_groups(); g++) {
      this.groups.push({ lo: this.x.reage_group_lo(g), hi: Math.min(this.x.reage_group_hi(g), 100) });
    }
    this.info = this.#string(this.x.reage_info());
  }

  // Loads the generator from its own blob, for weights loaded without it;
  // apply() throws an error with needsGenerator set when a face needs it.
  loadGenerator(blob) {
    this.#loadWith(this.x.reage_load_generator, blob);
  }

  // Loads the face detector's blob (weights/blazeface.blob).
  loadDetector(blob) {
    this.#loadWith(this.x.reage_load_detector, blob);
  }

  // The faces in a photo, most certain first: [{score, rect: {x0, y0, x1,
  // y1}, keypoints: [[x, y] x 6], box: {cx, cy, size, angle}}], where box is
  // the aligned crop that the re-aging uses.
  detect(rgba, width, height, max = 16) {
    const per = this.x.reage_face_floats(), ptr = this.#photoPtr(rgba), out = this.x.reage_malloc(max * per * 4);
    const n = this.x.reage_detect(ptr, rgba.byteLength, width, height, out, max);
    const f = n > 0 ? new Float32Array(this.#copy(out, n * per * 4)) : null;
    this.x.reage_free(out);
    if (n < 0) this.#fail();
    const faces = [];
    for (let i = 0; i < n; i++) {
      const o = f.subarray(i * per, (i + 1) * per);
      faces.push({
        score: o[0],
        rect: { x0: o[1], y0: o[2], x1: o[3], y1: o[4] },
        keypoints: Array.from({ length: 6 }, (_, k) => [o[5 + 2 * k], o[6 + 2 * k]]),
        box: { cx: o[17], cy: o[18], size: o[19], angle: o[20] },
      });
    }
    return faces;
  }

  // Loads the face mesh's blob (weights/facemesh.blob).
  loadMesh(blob) {
    this.#loadWith(this.x.reage_load_mesh, blob);
  }

  // The 468-point mesh of a face that detect() found: {score (how surely the
  // square holds a face), roi: {cx, cy, size, angle} (the square the network
  // saw), points: Float32Array of x, y, z in the photo's pixels}.
  mesh(rgba, width, height, face) {
    const per = this.x.reage_mesh_floats(), det = new Float32Array(21);
    det.set([face.score, face.rect.x0, face.rect.y0, face.rect.x1, face.rect.y1, ...face.keypoints.flat()]);
    const ptr = this.#photoPtr(rgba), dp = this.#put(det), out = this.x.reage_malloc(per * 4);
    const rc = this.x.reage_mesh(ptr, rgba.byteLength, width, height, dp, out);
    const f = rc === 0 ? new Float32Array(this.#copy(out, per * 4)) : null;
    [dp, out].forEach((p) => this.x.reage_free(p));
    if (!f) this.#fail();
    return { score: f[0], roi: { cx: f[1], cy: f[2], size: f[3], angle: f[4] }, points: f.subarray(5) };
  }

  get minAge() { return this.groups[0].lo; }
  get maxAge() { return this.groups[this.groups.length - 1].hi; }

  // rgba: Uint8ClampedArray of width*height*4; box: {cx, cy, size, angle}
  // in pixels and radians (clockwise; 0 when absent).
  estimateAge(rgba, width, height, box) {
    const ptr = this.#photoPtr(rgba);
    const age = this.x.reage_estimate_age(ptr, rgba.byteLength, width, height, box.cx, box.cy, box.size, box.angle || 0);
    if (age < 0) this.#fail();
    return age;
  }

  // Returns a new Uint8ClampedArray: the photo with each face re-aged from
  // its own age to targetAge; faces: [{box, source}].
  apply(rgba, width, height, faces, targetAge) {
    const spec = ReAgeEngine.#faceSpec(faces, targetAge);
    // the photo's one copy stays as it is: the re-aging works on a second buffer, kept for the next move
    const src = this.#photoPtr(rgba), sp = this.#put(spec);
    if (!this.#photo.result) this.#photo.result = this.x.reage_malloc(rgba.byteLength);
    const ptr = this.#photo.result;
    if (!ptr) { this.x.reage_free(sp); throw new Error('the engine is out of memory'); }
    new Uint8Array(this.memory.buffer).copyWithin(ptr, src, src + rgba.byteLength);
    const rc = this.x.reage_apply(ptr, rgba.byteLength, width, height, sp, faces.length);
    const out = rc === 0 ? new Uint8ClampedArray(this.#copy(ptr, rgba.byteLength)) : null;
    this.x.reage_free(sp);
    if (rc === -2) throw Object.assign(new Error(this.#string(this.x.reage_error())), { needsGenerator: true });
    if (!out) this.#fail();
    return out;
  }

  // One frame of the camera (RGBA, changed in place): the face in box
  // ({cx, cy, size, angle}) from age source to target, as apply does on a
  // coarser grid. Returns the box that follows the face into the next frame,
  // or null where the face was lost.
  frame(rgba, width, height, box, source, target) {
    const ptr = this.#put(rgba), bp = this.#put(new Float32Array([box.cx, box.cy, box.size, box.angle || 0]));
    const rc = this.x.reage_frame(ptr, rgba.byteLength, width, height, bp, source, target);
    if (rc === 1) new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.byteLength).set(new Uint8Array(this.memory.buffer, ptr, rgba.byteLength));
    const [cx, cy, size, angle] = new Float32Array(this.#copy(bp, 16));
    [ptr, bp].forEach((p) => this.x.reage_free(p));
    if (rc < 0) this.#fail();
    return rc === 1 ? { cx, cy, size, angle } : null;
  }

  // The slider's preview: prepares a small copy of the photo (RGBA, faces as
  // for apply) once; previewPlan(age) plans its anchor ages one a call,
  // nearest age first (returns how many are left); previewRender(age) then
  // draws it from the planned anchors nearest that age in a few
  // milliseconds, as the changed region {x0, y0, width, height, rgba} (its
  // unchanged pixels transparent), or null when no face changes. Before
  // drawing, previewRender plans what it needs.
  #preview = { src: 0, dst: 0, len: 0, width: 0, height: 0, bounds: 0 };
  previewPrepare(rgba, width, height, faces) {
    const p = this.#preview;
    [p.src, p.dst, p.bounds].forEach((q) => q && this.x.reage_free(q));
    Object.assign(p, { src: 0, dst: 0, len: 0, width: 0, height: 0, bounds: 0 });
    const spec = ReAgeEngine.#faceSpec(faces, null);
    const src = this.#put(rgba), sp = this.#put(spec), dst = this.x.reage_malloc(rgba.byteLength), bounds = this.x.reage_malloc(16);
    const rc = dst && bounds ? this.x.reage_preview_prepare(src, rgba.byteLength, width, height, sp, faces.length) : -1;
    this.x.reage_free(sp);
    if (rc !== 0) {
      [src, dst, bounds].forEach((q) => q && this.x.reage_free(q));
      if (!dst || !bounds) throw new Error('the engine is out of memory');
      this.#fail();
    }
    Object.assign(p, { src, dst, len: rgba.byteLength, width, height, bounds });
  }

  previewPlan(targetAge) {
    const left = this.x.reage_preview_plan(targetAge);
    if (left < 0) this.#fail();
    return left;
  }

  previewRender(targetAge) {
    const p = this.#preview;
    if (!p.src) throw new Error('no preview prepared');
    while (!this.x.reage_preview_ready(targetAge)) if (this.previewPlan(targetAge) === 0) break;
    if (this.x.reage_preview_render(p.src, p.dst, p.len, p.width, p.height, targetAge, p.bounds) !== 0) this.#fail();
    const [x0, y0, x1, y1] = new Int32Array(this.memory.buffer, p.bounds, 4);
    if (x1 <= x0 || y1 <= y0) return null;
    // the pixels the change left as they were come out transparent: the photo's own show through
    const w = x1 - x0, h = y1 - y0, rgba = new Uint8ClampedArray(w * h * 4), heap = new Uint8Array(this.memory.buffer);
    for (let y = 0; y < h; y++) {
      const at = (y0 + y) * p.width + x0, row = y * w * 4;
      rgba.set(heap.subarray(p.dst + at * 4, p.dst + (at + w) * 4), row);
      for (let x = 0, d = p.dst + at * 4, s = p.src + at * 4; x < w; x++, d += 4, s += 4) {
        if (heap[d] === heap[s] && heap[d + 1] === heap[s + 1] && heap[d + 2] === heap[s + 2]) rgba[row + 4 * x + 3] = 0;
      }
    }
    return { x0, y0, width: w, height: h, rgba };
  }

  // The generator's raw output for a [3,res,res] face and group weights.
  generate(face, groupw) {
    const f = this.#put(face), g = this.#put(groupw), o = this.x.reage_malloc(face.byteLength);
    const rc = this.x.reage_generate(f, g, o);
    const out = new Float32Array(this.#copy(o, face.byteLength));
    [f, g, o].forEach((p) => this.x.reage_free(p));
    if (rc !== 0) this.#fail();
    return out;
  }

  // An elementwise kernel (0 scale-shift, 1 leaky ReLU, 2 mean/variance,
  // 3 upsampling row, 4 depthwise 3x3 row over x as three rows) in its SIMD
  // or reference form, for tests.
  kernel(which, reference, x) {
    const n = which === 4 ? x.length / 3 : x.length;
    const xp = this.#put(x), outLen = which === 3 ? 2 * n : which === 2 ? 2 : n;
    const yp = this.x.reage_malloc(outLen * 4);
    this.x.reage_test_kernel(which, reference ? 1 : 0, yp, xp, n);
    const out = new Float32Array(this.#copy(yp, outLen * 4));
    [xp, yp].forEach((p) => this.x.reage_free(p));
    return out;
  }

  get kernelBackend() { return this.#string(this.x.reage_kernel_backend()); }

  // C = A * B through the SIMD kernel, or the scalar reference.
  sgemm(reference, M, N, K, A, B) {
    const a = this.#put(A), b = this.#put(B), c = this.x.reage_malloc(M * N * 4);
    new Float32Array(this.memory.buffer, c, M * N).fill(0);
    this.x.reage_test_sgemm(reference ? 1 : 0, 0, 0, M, N, K, a, b, 0, c);
    const out = new Float32Array(this.#copy(c, M * N * 4));
    [a, b, c].forEach((p) => this.x.reage_free(p));
    return out;
  }
}
