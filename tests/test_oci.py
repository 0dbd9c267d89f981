"""`make oci`: the module as a compat-variant Wasm OCI image, and its round trip through a real
registry (docker-registry on a free port) with skopeo: pushed, pulled back by digest, the layer
byte-for-byte the module, the digest pinned. README, *Deploying*."""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.registry import Registry, skopeo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import oci_image  # noqa: E402

LAYOUT = REPO / "target" / "oci" / "mcp-auth-filter"
DIGEST_FILE = LAYOUT.with_name(LAYOUT.name + ".digest")
REPOSITORY = "mcp/mcp-auth-filter"


def cargo_version() -> str:
    for line in (REPO / "Cargo.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise AssertionError("no version in Cargo.toml")


TAG = cargo_version()


@pytest.fixture(scope="module")
def layout(wasm_path) -> Path:
    if not (LAYOUT / "index.json").exists():
        pytest.fail(f"{LAYOUT} is missing: run `make oci` first (make integration does)")
    return LAYOUT


@pytest.fixture(scope="module")
def pinned_digest(layout) -> str:
    return DIGEST_FILE.read_text().strip()


def layout_files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def layer_blob(root: Path) -> Path:
    manifest = json.loads(oci_image._blob(root, json.loads((root / "index.json").read_bytes())["manifests"][0]))
    return root / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]


# --- the image ------------------------------------------------------------------------------

def test_make_oci_holds_the_built_module_in_the_compat_format(layout, pinned_digest, wasm_path):
    pulled = oci_image.read_module(layout, TAG)
    assert pulled.module == wasm_path.read_bytes()
    assert pulled.manifest_digest == pinned_digest
    manifest = pulled.manifest
    # What Istio's and Envoy Gateway's image fetchers look for in a compat image.
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["annotations"] == {"module.wasm.image/variant": "compat"}
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    config = json.loads(oci_image._blob(layout, manifest["config"]))
    assert (config["architecture"], config["os"]) == ("wasm", "wasip1")
    # diff_ids: the digest of the uncompressed layer, what a runtime checks after gunzip.
    assert config["rootfs"]["diff_ids"] == [oci_image.digest_of(oci_image.layer_tar(wasm_path.read_bytes()))]


def test_skopeo_reads_the_layout(layout, pinned_digest, tmp_path):
    raw = skopeo("inspect", "--raw", f"oci:{layout}:{TAG}", home=tmp_path).stdout.encode()
    assert oci_image.digest_of(raw) == pinned_digest


def test_same_module_same_digest_and_bytes(layout, pinned_digest, wasm_path, tmp_path):
    # Through the CLI, as `make oci` runs it, into two fresh layouts.
    for name in ("a", "b"):
        out = subprocess.run([sys.executable, str(REPO / "scripts" / "oci_image.py"), "build", str(wasm_path),
                              str(tmp_path / name), "--tag", TAG], check=True, capture_output=True, text=True)
        assert out.stdout.strip() == pinned_digest
    assert layout_files(tmp_path / "a") == layout_files(tmp_path / "b") == layout_files(layout)


def test_another_module_another_digest(wasm_path, pinned_digest):
    module = bytearray(wasm_path.read_bytes())
    module[-1] ^= 1
    assert oci_image.build(bytes(module), TAG).manifest_digest != pinned_digest


def test_build_refuses_what_is_not_a_module():
    with pytest.raises(oci_image.OciError, match="not a wasm module"):
        oci_image.build(b"#!/bin/sh\n", TAG)


def test_read_refuses_a_tampered_layer(layout, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(layout, copy)
    blob = layer_blob(copy)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(oci_image.OciError, match="does not match"):
        oci_image.read_module(copy, TAG)


# --- through a registry ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = Registry(tmp_path_factory.mktemp("registry")).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def pushed(registry, layout, pinned_digest, tmp_path_factory):
    """The layout pushed as REPOSITORY:TAG; returns skopeo's reported digest."""
    home = tmp_path_factory.mktemp("skopeo-home")
    digest_file = home / "pushed.digest"
    skopeo("copy", "--dest-tls-verify=false", "--preserve-digests", "--digestfile", str(digest_file),
           f"oci:{layout}:{TAG}", f"docker://{registry.host}/{REPOSITORY}:{TAG}", home=home)
    return digest_file.read_text().strip()


def test_push_keeps_the_digest(registry, pushed, pinned_digest):
    assert pushed == pinned_digest
    status, headers, body = registry.get(f"/v2/{REPOSITORY}/manifests/{TAG}",
                                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 200, body
    assert headers["content-type"] == "application/vnd.oci.image.manifest.v1+json"
    assert headers["docker-content-digest"] == pinned_digest
    assert oci_image.digest_of(body) == pinned_digest


def test_pull_by_digest_gives_the_module_byte_for_byte(registry, pushed, layout, wasm_path, tmp_path):
    dest = tmp_path / "pulled"
    skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/{REPOSITORY}@{pushed}",
           f"oci:{dest}:{TAG}", home=tmp_path)
    pulled = oci_image.read_module(dest, TAG)
    assert pulled.manifest_digest == pushed
    assert pulled.module == wasm_path.read_bytes()
    assert hashlib.sha256(pulled.module).digest() == hashlib.sha256(wasm_path.read_bytes()).digest()
    assert layer_blob(dest).read_bytes() == layer_blob(layout).read_bytes()


def test_pull_by_a_wrong_digest_fails(registry, pushed, tmp_path):
    wrong = pushed[:-1] + ("0" if pushed[-1] != "0" else "1")
    dest = tmp_path / "wrong"
    result = skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/{REPOSITORY}@{wrong}",
                    f"oci:{dest}:{TAG}", home=tmp_path, check=False)
    assert result.returncode != 0
    assert "manifest unknown" in result.stderr, result.stderr
    assert not (dest / "index.json").exists() or not json.loads((dest / "index.json").read_bytes())["manifests"]


def test_push_of_a_tampered_layer_is_refused(layout, tmp_path):
    # An empty registry of its own: one that already holds the good layer under that digest
    # lets skopeo skip the upload (content addressing at work), so nothing would be checked.
    copy = tmp_path / "tampered"
    shutil.copytree(layout, copy)
    blob = layer_blob(copy)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    registry = Registry(tmp_path / "registry").start()
    try:
        result = skopeo("copy", "--dest-tls-verify=false", "--preserve-digests", f"oci:{copy}:{TAG}",
                        f"docker://{registry.host}/{REPOSITORY}:{TAG}", home=tmp_path, check=False)
        assert result.returncode != 0, result.stdout
        assert "Digest did not match" in result.stderr, result.stderr
        status, _, _ = registry.get(f"/v2/{REPOSITORY}/manifests/{TAG}", method="HEAD",
                                    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert status == 404
    finally:
        registry.stop()
