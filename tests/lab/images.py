"""Container images for the lab's living node, built here: nothing can be pulled from a registry.

Every image is one layer: Debian's busybox-static (/bin/busybox with its applet links), /etc/passwd and
/etc/group, /tmp, and the stand-in scripts of tests/lab/standins/. The ingress gateway's image adds Debian's
socat with the shared libraries `ldd` lists for it (and the dynamic loader), because busybox has no TLS
server. Images differ only by their entrypoint and arguments:

    pause                 /pause                        (a sleeper that exits on TERM)
    sb-core               sb-serve sb-core 8080         env MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_PASSWORD,
                                                        SB_MYSQL_CHECK (login | greeting; standins/mysql-ping)
    sb-ui                 sb-serve sb-ui 80
    sb-admin              sb-serve sb-admin 80
    sb-kong               sb-serve sb-kong 8000
    istio-ingressgateway  gateway                       env GW_ROUTES, GW_CERT, GW_KEY, GW_*_PORT (standins/gateway)
    (istiod in the chart)  sb-serve istiod 15014        from the istio-ingressgateway image: /ready

Each image is a docker-archive tarball (manifest.json, a config JSON, one layer tar) as
`skopeo copy docker-archive:FILE ...` and `ctr -n k8s.io images import FILE` read it; its RepoTags name it
as image_ref() does. Built once into ${SBOPS_CACHE:-~/.cache/sbops}/images/<hash of every input>/, written
to a temporary directory that is renamed into place, under a flock so two processes never build at once.

Script use:  python -m tests.lab.images        (builds if needed; prints NAME PATH REF per image)
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
SOCAT = Path("/usr/bin/socat")
STANDINS = Path(__file__).resolve().parent / "standins"
REGISTRY = "730335576030.dkr.ecr.ap-south-1.amazonaws.com"
TAG = "lab"
# Kubernetes v1.20's default --pod-infra-container-image, so a kubelet left at its default finds it.
PAUSE_REF = "k8s.gcr.io/pause:3.2"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Fixed timestamps and owners: the same inputs give byte-identical layers (and digests) on every machine.
EPOCH = 0
CREATED = "1970-01-01T00:00:00Z"

# Stand-in file in tests/lab/standins -> (path in the image, mode).
SCRIPTS: dict[str, tuple[str, int]] = {
    "sbhttp.sh": ("usr/local/lib/sbhttp.sh", 0o644),
    "sb-handler": ("usr/local/bin/sb-handler", 0o755),
    "sb-serve": ("usr/local/bin/sb-serve", 0o755),
    "gateway": ("usr/local/bin/gateway", 0o755),
    "gw-handler": ("usr/local/bin/gw-handler", 0o755),
    "mysql-ping": ("usr/local/bin/mysql-ping", 0o755),
    "pause": ("pause", 0o755),
}
DIRECTORIES = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "usr/local", "usr/local/bin", "usr/local/lib",
               "etc", "root", "proc", "sys", "dev", "run", "var", "var/run")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


@dataclass(frozen=True)
class ImageSpec:
    """What distinguishes one image: how it starts, what it listens on, whether it carries socat."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    socat: bool = False


IMAGES: dict[str, ImageSpec] = {
    "pause": ImageSpec(("/pause",)),
    "sb-core": ImageSpec(("/usr/local/bin/sb-serve",), ("sb-core", "8080"), (8080,)),
    "sb-ui": ImageSpec(("/usr/local/bin/sb-serve",), ("sb-ui", "80"), (80,)),
    "sb-admin": ImageSpec(("/usr/local/bin/sb-serve",), ("sb-admin", "80"), (80,)),
    "sb-kong": ImageSpec(("/usr/local/bin/sb-serve",), ("sb-kong", "8000"), (8000,)),
    "istio-ingressgateway": ImageSpec(("/usr/local/bin/gateway",), (), (8080, 8443, 15021), socat=True),
}


def image_ref(name: str, registry: str = REGISTRY, tag: str = TAG) -> str:
    """The name an image carries in its tarball (and so after `ctr images import`): REGISTRY/NAME:TAG, as
    production names StackBill's images; the pause image under Kubernetes' own default name."""
    if name not in IMAGES:
        raise KeyError(f"no lab image {name!r} (known: {', '.join(IMAGES)})")
    return PAUSE_REF if name == "pause" else f"{registry}/{name}:{tag}"


def cache_root(cache: Path | None = None) -> Path:
    base = Path(cache) if cache is not None else Path(os.environ.get("SBOPS_CACHE") or Path.home() / ".cache" / "sbops")
    return base / "images"


# --- inputs ----------------------------------------------------------------------------------------------

def _require_busybox() -> None:
    if not (BUSYBOX.is_file() and os.access(BUSYBOX, os.X_OK)):
        raise RuntimeError(f"{BUSYBOX} is missing: the lab's images are built from Debian's busybox-static "
                           "(apt-get install busybox-static; scripts/setup installs it)")
    probe = subprocess.run(["ldd", str(BUSYBOX)], capture_output=True, text=True)
    if "not a dynamic executable" not in (probe.stdout + probe.stderr):
        raise RuntimeError(f"{BUSYBOX} is dynamically linked: install Debian's busybox-static, not busybox")


def _applets() -> list[str]:
    """The applet paths busybox itself lists (bin/sh, usr/bin/wget, ...), relative to /."""
    proc = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True)
    return sorted({line.strip().lstrip("/") for line in proc.stdout.splitlines()
                   if "/" in line.strip() and line.strip().lstrip("/") != "bin/busybox"})


def socat_files() -> list[Path]:
    """socat, the shared libraries ldd resolves for it and its dynamic loader, as absolute paths."""
    if not (SOCAT.is_file() and os.access(SOCAT, os.X_OK)):
        raise RuntimeError(f"{SOCAT} is missing: the ingress gateway image needs Debian's socat "
                           "(apt-get install socat; scripts/setup installs it)")
    proc = subprocess.run(["ldd", str(SOCAT)], capture_output=True, text=True, check=True)
    files = [SOCAT]
    for line in proc.stdout.splitlines():
        parts = line.split()
        if "=>" in parts:
            target = parts[parts.index("=>") + 1]
            if target == "not":
                raise RuntimeError(f"ldd {SOCAT}: a library is not found: {line.strip()}")
            files.append(Path(target))
        elif parts and parts[0].startswith("/"):
            files.append(Path(parts[0]))  # the dynamic loader, at the path the ELF interpreter names
    return files


def _inputs_hash() -> str:
    """sha256 over every input: busybox, socat and its libraries, the stand-in scripts, this builder."""
    digest = hashlib.sha256()
    sources = [BUSYBOX, *socat_files(), Path(__file__).resolve(), *(STANDINS / name for name in sorted(SCRIPTS))]
    for path in sources:
        digest.update(str(path).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# --- the layer and the archive ----------------------------------------------------------------------------

def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "root", "root"
    return info


def layer_tar(spec: ImageSpec, applets: list[str]) -> bytes:
    """The image's root filesystem as an uncompressed, reproducible tar."""
    files: dict[str, tuple[bytes, int]] = {
        "bin/busybox": (BUSYBOX.read_bytes(), 0o755),
        "etc/passwd": (PASSWD.encode(), 0o644),
        "etc/group": (GROUP.encode(), 0o644),
    }
    for source, (target, mode) in SCRIPTS.items():
        files[target] = ((STANDINS / source).read_bytes(), mode)
    if spec.socat:
        for path in socat_files():
            files[str(path).lstrip("/")] = (path.read_bytes(), 0o755)
    dirs = set(DIRECTORIES)
    for name in [*files, *applets]:
        parent = Path(name).parent
        while str(parent) != ".":
            dirs.add(str(parent))
            parent = parent.parent
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(_info("tmp", tarfile.DIRTYPE, 0o1777))
        for name in sorted(dirs):
            tar.addfile(_info(name, tarfile.DIRTYPE, 0o755))
        for name in applets:
            if name not in files:
                tar.addfile(_info(name, tarfile.SYMTYPE, 0o777, link="/bin/busybox"))
        for name in sorted(files):
            data, mode = files[name]
            tar.addfile(_info(name, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))
    return buf.getvalue()


def image_config(spec: ImageSpec, diff_id: str) -> dict:
    """The image's config JSON (the OCI/Docker image config the runtime reads the entrypoint from)."""
    config: dict = {"Env": [PATH_ENV], "Entrypoint": list(spec.entrypoint), "WorkingDir": "/",
                    "Labels": {"org.opencontainers.image.source": "sbops tests/lab/images.py"}}
    if spec.cmd:
        config["Cmd"] = list(spec.cmd)
    if spec.ports:
        config["ExposedPorts"] = {f"{port}/tcp": {} for port in spec.ports}
    return {"architecture": "amd64", "os": "linux", "created": CREATED, "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": CREATED, "created_by": "tests/lab/images.py (busybox-static)"}]}


def write_archive(path: Path, name: str, spec: ImageSpec, applets: list[str]) -> None:
    """One docker-archive tarball: manifest.json, <config digest>.json, <layer digest>/layer.tar."""
    layer = layer_tar(spec, applets)
    layer_hex = hashlib.sha256(layer).hexdigest()
    config = json.dumps(image_config(spec, f"sha256:{layer_hex}"), sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [image_ref(name)],
                            "Layers": [f"{layer_hex}/layer.tar"]}]).encode()
    with tarfile.open(path, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(_info(layer_hex, tarfile.DIRTYPE, 0o755))
        for member, data in ((f"{layer_hex}/layer.tar", layer), (config_name, config), ("manifest.json", manifest)):
            tar.addfile(_info(member, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))


# --- build with cache -------------------------------------------------------------------------------------

def build_images(cache: Path | None = None) -> dict[str, Path]:
    """Every lab image as a docker-archive tarball: {name: path}, names as in IMAGES.

    `cache` is the sbops cache directory (default ${SBOPS_CACHE:-~/.cache/sbops}); the tarballs live in its
    images/<inputs hash>/. Builds only when that directory is missing; fails loudly without busybox-static
    or socat.
    """
    _require_busybox()
    root = cache_root(cache)
    root.mkdir(parents=True, exist_ok=True)
    key = _inputs_hash()
    final = root / key
    paths = {name: final / f"{name}.tar" for name in IMAGES}
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "images.json").is_file():
            return paths
        work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
        try:
            applets = _applets()
            for name, spec in IMAGES.items():
                write_archive(work / f"{name}.tar", name, spec, applets)
            (work / "images.json").write_text(json.dumps({name: image_ref(name) for name in IMAGES}, indent=1))
            work.chmod(0o755)
            os.rename(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return paths


def main(argv: list[str]) -> int:
    try:
        images = build_images()
    except RuntimeError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    for name, path in images.items():
        print(name, path, image_ref(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
