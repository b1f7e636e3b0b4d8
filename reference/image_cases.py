"""Expected Pillow results for the image fixtures in test/fixtures/images/.

Run after test/fixtures/images/make_images.ts:
    python3 -m venv /tmp/imgvenv && /tmp/imgvenv/bin/pip install pillow numpy
    /tmp/imgvenv/bin/python reference/image_cases.py

1. Writes the JPEG fixtures that jpeg-js cannot encode (4:2:0, 4:2:2, progressive, grayscale, CMYK,
   restart markers, tiny sizes), made by Pillow from a 41x29 crop of resize_src_61x47.png.
2. Writes test/fixtures/images/expected.safetensors (all uint8):
     "<file>"                : Image.open(file).convert('RGB') as [H, W, 3], for every .png/.jpg here
     "resize/<W>x<H>"        : Image.open('resize_src_61x47.png').convert('RGB').resize((W, H), BICUBIC)
   plus metadata: Pillow and libjpeg versions.
"""
import json
import os
import struct

import numpy as np
from PIL import Image, features

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "images")
RESIZE_SIZES = [(61, 70), (80, 47), (7, 5), (1, 1), (29, 97), (200, 3)]


def write_jpegs():
    # 41x29: odd sizes, so the last chroma column/row is a partial one.
    src = Image.open(os.path.join(HERE, "resize_src_61x47.png")).convert("RGB").crop((0, 0, 41, 29))
    src.save(os.path.join(HERE, "pil_420.jpg"), quality=85, subsampling=2)
    src.save(os.path.join(HERE, "pil_422.jpg"), quality=85, subsampling=1)
    src.save(os.path.join(HERE, "pil_420_progressive.jpg"), quality=85, subsampling=2, progressive=True)
    src.save(os.path.join(HERE, "pil_420_restart.jpg"), quality=85, subsampling=2, restart_marker_blocks=3)
    src.convert("L").save(os.path.join(HERE, "pil_gray.jpg"), quality=85)
    src.convert("CMYK").save(os.path.join(HERE, "pil_cmyk.jpg"), quality=85)
    # 4 px wide: chroma is 2 samples wide, so libjpeg uses plain (box) h2v2 upsampling, not "fancy".
    src.crop((0, 0, 4, 3)).save(os.path.join(HERE, "pil_420_4x3.jpg"), quality=85, subsampling=2)
    src.crop((0, 0, 6, 5)).save(os.path.join(HERE, "pil_420_6x5.jpg"), quality=85, subsampling=2)


def write_safetensors(path, tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, dtype=np.uint8)
        header[name] = {"dtype": "U8", "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
        blobs.append(arr.tobytes())
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    write_jpegs()
    tensors = {}
    for name in sorted(os.listdir(HERE)):
        if name.endswith((".png", ".jpg")):
            with Image.open(os.path.join(HERE, name)) as im:
                tensors[name] = np.asarray(im.convert("RGB"))
    src = Image.open(os.path.join(HERE, "resize_src_61x47.png")).convert("RGB")
    for w, h in RESIZE_SIZES:
        tensors[f"resize/{w}x{h}"] = np.asarray(src.resize((w, h), Image.BICUBIC))
    meta = {"pillow": Image.__version__, "libjpeg": str(features.version("jpg")),
            "libjpeg_turbo": str(features.version("libjpeg_turbo"))}
    write_safetensors(os.path.join(HERE, "expected.safetensors"), tensors, meta)
    print(f"wrote {len(tensors)} tensors; {meta}")


if __name__ == "__main__":
    main()
