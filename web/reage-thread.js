// One helper thread of the engine, started by web/reage.js: a further
// instance of the threaded module on the engine's shared memory. It sleeps
// until the engine posts a loop, takes its share of it, and sleeps again.
import { engineImports } from './reage.js';

function run({ module, memory, stack, thread }, started) {
  const { exports } = new WebAssembly.Instance(module, engineImports(memory));
  exports.stackRestore(stack); // its own stack, which the engine allocated for it
  const words = new Int32Array(memory.buffer), job = exports.reage_thread_word() >> 2;
  started();
  // a loop posted between the load and the wait makes the wait return at once
  for (let seen = Atomics.load(words, job); ; seen = Atomics.load(words, job)) {
    exports.reage_thread_help(thread);
    Atomics.wait(words, job, seen);
  }
}

if (globalThis.process?.versions?.node) {
  const { parentPort } = await import('node:worker_threads');
  parentPort.once('message', (d) => run(d, () => parentPort.postMessage('started')));
} else {
  onmessage = ({ data }) => run(data, () => postMessage('started'));
}
