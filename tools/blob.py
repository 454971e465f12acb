"""Reads ReAge's weight blob (src/blob.h) into numpy arrays: the PyTorch
mirror (tools/torch_peer.py) loads the engine's weights through it."""
import struct
import zlib

import numpy as np

DTYPES = {0: np.float32, 1: np.float16, 2: np.uint32}
Q8 = 3  # int8 with a float32 scale per slice along the first dimension


def read_blob(path, magic=b"REAGEBLB"):
    data = open(path, "rb").read()
    if data[:8] != magic:
        raise ValueError(f"{path}: bad magic")
    if zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        raise ValueError(f"{path}: checksum mismatch")
    at = 8
    version, clen = struct.unpack_from("<II", data, at)
    at += 8
    config = dict(line.split("=", 1) for line in data[at:at + clen].decode().splitlines() if "=" in line)
    at += clen
    (count,) = struct.unpack_from("<I", data, at)
    at += 4
    tensors = {}
    for _ in range(count):
        (nlen,) = struct.unpack_from("<I", data, at)
        name = data[at + 4:at + 4 + nlen].decode()
        at += 4 + nlen
        dtype, ndim = struct.unpack_from("<II", data, at)
        shape = struct.unpack_from(f"<{ndim}I", data, at + 8)
        at += 8 + 4 * ndim
        n = int(np.prod(shape)) if ndim else 1
        if dtype == Q8:
            rows = shape[0] if ndim else 1
            scale = np.frombuffer(data, np.float32, rows, at)
            q = np.frombuffer(data, np.int8, n, at + 4 * rows).reshape(rows, -1).astype(np.float32)
            tensors[name] = (q * scale[:, None]).reshape(shape)
            at += 4 * rows + n
            continue
        arr = np.frombuffer(data, DTYPES[dtype], n, at).reshape(shape)
        at += n * np.dtype(DTYPES[dtype]).itemsize
        tensors[name] = arr.astype(np.float32) if dtype != 2 else arr
    return config, tensors
