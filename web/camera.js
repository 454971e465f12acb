// The live camera: frames from the camera, each re-aged by the worker at the
// slider's age and drawn as it comes back; the next frame is taken when one
// returns, so the view never falls behind. Frames stay in this tab, as
// photos do. Snapshot saves the frame on view.
const $ = (id) => document.getElementById(id);

export function createCamera(worker, { message, show, saveCanvas }) {
  const live = { stream: null, video: null, grab: null, running: false, target: Number($('liveAge').value), times: [] };

  function setAge(age) {
    live.target = Number(age);
    $('liveAgeValue').textContent = `${age} years`;
  }

  function next() {
    if (!live.running) return;
    const v = live.video;
    if (v.readyState < 2 || !v.videoWidth) { requestAnimationFrame(next); return; }
    const w = v.videoWidth, h = v.videoHeight;
    if (!live.grab || live.grab.canvas.width !== w || live.grab.canvas.height !== h) {
      live.grab = new OffscreenCanvas(w, h).getContext('2d', { willReadFrequently: true });
    }
    live.grab.drawImage(v, 0, 0);
    const rgba = live.grab.getImageData(0, 0, w, h).data;
    worker.postMessage({ type: 'frame', rgba: rgba.buffer, width: w, height: h, target: live.target }, [rgba.buffer]);
  }

  // a frame back from the worker: drawn, counted, and the next one asked for
  function onFrame({ rgba, width, height, found, age }) {
    if (!live.running) return;
    const view = $('liveView');
    if (view.width !== width || view.height !== height) { view.width = width; view.height = height; }
    view.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
    const now = performance.now();
    live.times.push(now);
    while (live.times.length > 1 && now - live.times[0] > 2000) live.times.shift();
    const fps = live.times.length > 1 ? (live.times.length - 1) / ((now - live.times[0]) / 1000) : 0;
    $('liveInfo').textContent = found
      ? `${fps.toFixed(1)} frames a second · the face's own age read as ${Math.round(age)}`
      : `${fps.toFixed(1)} frames a second · looking for a face…`;
    document.body.dataset.liveFrames = String(Number(document.body.dataset.liveFrames || 0) + 1);
    document.body.dataset.liveFps = fps.toFixed(1);
    requestAnimationFrame(next);
  }

  async function start() {
    message('');
    if (!navigator.mediaDevices?.getUserMedia) return message('This browser offers no camera to web pages.');
    try {
      live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    } catch (e) {
      return message(`The camera could not be opened (${e.name === 'NotAllowedError' ? 'permission was refused' : e.message}).`);
    }
    live.video = Object.assign(document.createElement('video'), { muted: true, playsInline: true, srcObject: live.stream });
    await live.video.play();
    live.running = true;
    live.times = [];
    show($('drop'), false);
    show($('work'), false);
    show($('live'), true);
    worker.postMessage({ type: 'camera' }); // a new face to find
    next();
  }

  function stop() {
    live.running = false;
    live.stream?.getTracks().forEach((t) => t.stop());
    live.stream = null;
    show($('live'), false);
    show($('drop'), true);
  }

  $('liveAge').addEventListener('input', (e) => setAge(e.target.value));
  $('stopCamera').addEventListener('click', stop);
  $('snapshot').addEventListener('click', () => saveCanvas($('liveView'), `camera-age-${live.target}.png`, 'image/png'));
  setAge(live.target);
  return { start, stop, onFrame };
}
