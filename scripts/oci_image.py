#!/usr/bin/env python3
"""Package the filter's .wasm as an OCI image that Istio and Envoy Gateway pull, without Docker.

Format: the Wasm image specification's *compat* variant, the one both Istio's `WasmPlugin` and
Envoy Gateway's `EnvoyExtensionPolicy` (type `Image`) read first: an OCI image manifest whose
single layer is `application/vnd.oci.image.layer.v1.tar+gzip` holding one file, `plugin.wasm`,
and the annotation `module.wasm.image/variant: compat`. (Their other reader, the *oci* artifact
variant with an `application/vnd.module.wasm.content.layer.v1+wasm` layer, wants exactly two
layers, the second a runtime-config; the compat image is also an ordinary image any registry,
skopeo, crane or docker can copy.) The README's *Deploying* section says more.

Output: an OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/...`), which
`skopeo copy oci:DIR:TAG docker://REGISTRY/REPO:TAG` pushes as it is.

Reproducible: the same .wasm gives the same bytes and so the same manifest digest. The tar entry
has fixed owner, mode and a zero mtime; the gzip header is written here (no name, no time); the
JSON is canonical (sorted keys, no spaces); nothing records when or where it was built. The one
outside input is zlib's deflate stream at level 9, which is stable for a given zlib (a Python
linked against zlib-ng would give another digest for the same content: the config's `diff_ids`,
the digest of the uncompressed tar, stays the same there).

    python3 scripts/oci_image.py build target/wasm32-wasip1/release/mcp_auth_filter.wasm target/oci/mcp-auth-filter --tag 0.1.0
    python3 scripts/oci_image.py extract target/oci/mcp-auth-filter --tag 0.1.0 -o plugin.wasm

`build` prints the manifest digest (`sha256:...`): the value to pin in a WasmPlugin's `sha256`
or an image reference `REPO@sha256:...`. Standard library only.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import sys
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

PLUGIN_FILE = "plugin.wasm"
WASM_MAGIC = b"\0asm"

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
VARIANT_ANNOTATION = "module.wasm.image/variant"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
TITLE_ANNOTATION = "org.opencontainers.image.title"

# The platform the CNCF Wasm OCI artifact layout uses for a WASI preview 1 module. Nothing that
# pulls this image runs it as a container; the pair only says honestly what it holds.
ARCHITECTURE = "wasm"
OS = "wasip1"


class OciError(Exception):
    pass


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def layer_tar(module: bytes) -> bytes:
    """A tar holding only `plugin.wasm`, with nothing taken from the build machine."""
    info = tarfile.TarInfo(PLUGIN_FILE)
    info.size = len(module)
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(module))
    return out.getvalue()


def gzip_deterministic(data: bytes) -> bytes:
    """gzip (RFC 1952) with a fixed header: no file name, mtime 0, OS 255 (unknown).

    Written here rather than with gzip.compress, whose header bytes changed across Python
    versions; the deflate stream is zlib's at level 9."""
    header = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x02\xff"
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY)
    body = deflate.compress(data) + deflate.flush()
    trailer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return header + body + trailer


def descriptor(media_type: str, data: bytes, annotations: dict | None = None) -> dict:
    d = {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}
    if annotations:
        d["annotations"] = annotations
    return d


@dataclass
class Image:
    """Everything an OCI layout holds for one tagged image."""
    tag: str
    blobs: dict  # digest -> bytes (config, layer, manifest)
    manifest: bytes
    index: bytes

    @property
    def manifest_digest(self) -> str:
        return digest_of(self.manifest)


def build(module: bytes, tag: str) -> Image:
    if not module.startswith(WASM_MAGIC):
        raise OciError("not a wasm module (no \\0asm magic)")
    if not tag or "/" in tag or ":" in tag:
        raise OciError(f"invalid tag {tag!r}")
    tar = layer_tar(module)
    layer = gzip_deterministic(tar)
    config = canonical_json({
        "architecture": ARCHITECTURE,
        "os": OS,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(tar)]},
    })
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": descriptor(CONFIG_TYPE, config),
        "layers": [descriptor(LAYER_TYPE, layer, {TITLE_ANNOTATION: PLUGIN_FILE})],
        "annotations": {VARIANT_ANNOTATION: "compat"},
    })
    index = canonical_json({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [descriptor(MANIFEST_TYPE, manifest, {REF_NAME_ANNOTATION: tag})],
    })
    blobs = {digest_of(b): b for b in (config, layer, manifest)}
    return Image(tag=tag, blobs=blobs, manifest=manifest, index=index)


def write_layout(image: Image, layout: Path) -> None:
    """Write `image` as the only content of `layout` (replacing an earlier layout there)."""
    layout = Path(layout)
    if layout.exists():
        if not (layout / "oci-layout").is_file():
            raise OciError(f"{layout} exists and is not an OCI layout: not replacing it")
        shutil.rmtree(layout)
    blob_dir = layout / "blobs" / "sha256"
    blob_dir.mkdir(parents=True)
    for digest, data in image.blobs.items():
        (blob_dir / digest.split(":", 1)[1]).write_bytes(data)
    (layout / "index.json").write_bytes(image.index)
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))


def _blob(layout: Path, desc: dict) -> bytes:
    """A blob by descriptor, refused unless its bytes match the descriptor's digest and size."""
    digest = desc.get("digest", "")
    algorithm, _, hex_digest = digest.partition(":")
    if algorithm != "sha256" or len(hex_digest) != 64 or not all(c in "0123456789abcdef" for c in hex_digest):
        raise OciError(f"unsupported digest {digest!r}")
    data = (Path(layout) / "blobs" / "sha256" / hex_digest).read_bytes()
    if digest_of(data) != digest or len(data) != desc.get("size"):
        raise OciError(f"blob {digest} does not match its descriptor")
    return data


@dataclass
class Pulled:
    module: bytes
    manifest_digest: str
    manifest: dict


def read_module(layout: Path, tag: str | None = None) -> Pulled:
    """The `plugin.wasm` of a compat-variant image in an OCI layout, every digest checked.

    `tag`: the index entry's ref name; None takes the only entry."""
    index = json.loads((Path(layout) / "index.json").read_bytes())
    entries = index.get("manifests", [])
    if tag is not None:
        entries = [m for m in entries if m.get("annotations", {}).get(REF_NAME_ANNOTATION) == tag]
    if len(entries) != 1:
        raise OciError(f"expected one manifest for tag {tag!r}, found {len(entries)}")
    manifest_bytes = _blob(layout, entries[0])
    manifest = json.loads(manifest_bytes)
    layers = manifest.get("layers", [])
    if len(layers) != 1 or layers[0].get("mediaType") != LAYER_TYPE:
        raise OciError(f"not a compat-variant wasm image: layers {[l.get('mediaType') for l in layers]}")
    tar_bytes = gzip.decompress(_blob(layout, layers[0]))
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and os.path.basename(m.name) == PLUGIN_FILE]
        if len(members) != 1:
            raise OciError(f"expected one {PLUGIN_FILE} in the layer, found {len(members)}")
        extracted = tar.extractfile(members[0])
        module = extracted.read() if extracted else b""
    if not module.startswith(WASM_MAGIC):
        raise OciError(f"{PLUGIN_FILE} is not a wasm module")
    return Pulled(module=module, manifest_digest=digest_of(manifest_bytes), manifest=manifest)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write an OCI layout holding the module; print the manifest digest")
    b.add_argument("wasm", type=Path)
    b.add_argument("layout", type=Path)
    b.add_argument("--tag", required=True)
    b.add_argument("--digest-file", type=Path, help="also write the manifest digest here")
    e = sub.add_parser("extract", help="write the plugin.wasm of a layout's image (digests checked)")
    e.add_argument("layout", type=Path)
    e.add_argument("--tag")
    e.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            image = build(args.wasm.read_bytes(), args.tag)
            write_layout(image, args.layout)
            if args.digest_file:
                args.digest_file.write_text(image.manifest_digest + "\n")
            print(image.manifest_digest)
        else:
            pulled = read_module(args.layout, args.tag)
            args.output.write_bytes(pulled.module)
            print(pulled.manifest_digest)
    except (OciError, OSError, ValueError, tarfile.TarError) as err:
        print(f"oci_image: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
