// A photo as phones store it: the pixels turned on their side, with an EXIF
// orientation tag (6: turn 90 degrees clockwise to display) saying so.
import jpeg from 'jpeg-js';

// The JPEG's pixels set on a taller canvas (so that turning changes its
// shape), stored turned a quarter counter-clockwise, tagged 6.
// Returns { bytes, width, height } with the upright (display) size.
export function sidewaysJpeg(source) {
  const src = jpeg.decode(source, { useTArray: true });
  const W = src.width, H = src.height + 90; // upright: a grey band below the photo
  const upright = new Uint8Array(W * H * 4).fill(128);
  for (let y = 0; y < src.height; y++) upright.set(src.data.subarray(y * W * 4, (y + 1) * W * 4), y * W * 4);
  // stored: H wide, W tall; display pixel (x, y) is stored at (y, W - 1 - x)
  const stored = new Uint8Array(W * H * 4);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const sx = y, sy = W - 1 - x;
      stored.set(upright.subarray((y * W + x) * 4, (y * W + x) * 4 + 4), (sy * H + sx) * 4);
    }
  }
  const body = jpeg.encode({ data: stored, width: H, height: W }, 92).data;
  const tiff = [0x49, 0x49, 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0];
  const payload = [...Buffer.from('Exif\0\0', 'latin1'), ...tiff];
  const app1 = Buffer.from([0xff, 0xe1, (payload.length + 2) >> 8, (payload.length + 2) & 255, ...payload]);
  return { bytes: Buffer.concat([body.subarray(0, 2), app1, body.subarray(2)]), width: W, height: H };
}
