#!/usr/bin/env python3
"""The registries of scripts/bench-pkg.sh, as static files nginx serves.

    pkg-world.py WORK        writes WORK/www/<host>/... and WORK/git/repo.git, prints a JSON summary

pypi.test  a PEP 503 simple index of small pure-Python wheels built here (one top package
           requiring the others, so pip resolves a dependency graph);
npm.test   npm packuments (GET /<name> -> <name>/index.json) and tarballs for a binary tree
           of tiny packages (pb-0 requires pb-1 and pb-2, ...): `npm install pb-0` fetches all;
apt.test   a flat apt repository (Packages, an unsigned Release: [trusted=yes]) of small
           .debs built with dpkg-deb, pb-apt-0 depending on the others;
git.test   a bare repository (served by git http-backend through fcgiwrap);
other.test one page, not in the policy: the fenced client must be refused it.
Everything is deterministic (fixed contents, fixed dates).
"""
import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile

N_WHEELS = 6
N_NPM = 20
N_DEBS = 5
GIT_FILES = 60
GIT_COMMITS = 20
FILLER = "".join(f"# line {i}: filler so the package has some size\n" for i in range(60))


def write(path, data, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(data)


def wheel(name, version, requires):
    """A valid py3-none-any wheel: module, METADATA, WHEEL, RECORD."""
    mod = name.replace("-", "_")
    dist = f"{mod}-{version}.dist-info"
    files = {
        f"{mod}/__init__.py": f'"""{name}"""\nVERSION = "{version}"\n' + FILLER,
        f"{dist}/METADATA": "Metadata-Version: 2.1\n"
                            f"Name: {name}\nVersion: {version}\n"
                            + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: pkg-world\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
            z.writestr(zipfile.ZipInfo(path, (2026, 1, 1, 0, 0, 0)), data)
        record.append(f"{dist}/RECORD,,")
        z.writestr(zipfile.ZipInfo(f"{dist}/RECORD", (2026, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
    return f"{mod}-{version}-py3-none-any.whl", buf.getvalue()


def pypi(www):
    root = os.path.join(www, "pypi.test")
    names = [f"pkgbench-dep{i}" for i in range(1, N_WHEELS)]
    pkgs = [("pkgbench-app", names)] + [(n, []) for n in names]
    for name, reqs in pkgs:
        fname, data = wheel(name, "1.0.0", reqs)
        write(os.path.join(root, "packages", fname), data, "wb")
        sha = hashlib.sha256(data).hexdigest()
        write(os.path.join(root, "simple", name, "index.html"),
              f'<!DOCTYPE html>\n<html><body>\n<a href="/packages/{fname}#sha256={sha}">{fname}</a>\n</body></html>\n')
    write(os.path.join(root, "simple", "index.html"),
          "<!DOCTYPE html>\n<html><body>\n"
          + "".join(f'<a href="/simple/{n}/">{n}</a>\n' for n, _ in pkgs) + "</body></html>\n")
    return {"top": "pkgbench-app", "count": len(pkgs)}


def npm_tarball(name, version, deps):
    pj = json.dumps({"name": name, "version": version, "main": "index.js",
                     "dependencies": deps, "license": "MIT"}, indent=2).encode()
    idx = (f"// {name}\nmodule.exports = {json.dumps(name)};\n" + FILLER.replace("#", "//")).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.USTAR_FORMAT) as t:
        for path, data in (("package/package.json", pj), ("package/index.js", idx)):
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 1767225600, 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def npm(www):
    root = os.path.join(www, "npm.test")
    for i in range(N_NPM):
        name, version = f"pb-{i}", "1.0.0"
        deps = {f"pb-{c}": "^1.0.0" for c in (2 * i + 1, 2 * i + 2) if c < N_NPM}
        tgz = npm_tarball(name, version, deps)
        tpath = f"{name}/-/{name}-{version}.tgz"
        write(os.path.join(root, tpath), tgz, "wb")
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
        meta = {"name": name, "version": version, "dependencies": deps,
                "dist": {"tarball": f"https://npm.test/{tpath}", "shasum": hashlib.sha1(tgz).hexdigest(),
                         "integrity": integrity}}
        write(os.path.join(root, name, "index.json"),
              json.dumps({"name": name, "dist-tags": {"latest": version}, "versions": {version: meta},
                          "time": {version: "2026-01-01T00:00:00.000Z"}}))
    return {"top": "pb-0", "count": N_NPM}


def apt(www, work):
    root = os.path.join(www, "apt.test")
    os.makedirs(root)
    names = [f"pb-apt-{i}" for i in range(N_DEBS)]
    entries = []
    for i, name in enumerate(names):
        src = os.path.join(work, "deb-src", name)
        depends = ", ".join(names[1:]) if i == 0 else ""
        control = (f"Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: bench <bench@example.invalid>\n"
                   + (f"Depends: {depends}\n" if depends else "") + f"Description: {name} of bench-pkg\n")
        write(os.path.join(src, "DEBIAN", "control"), control)
        write(os.path.join(src, "usr", "share", name, "README"), FILLER * 8)
        deb = f"{name}_1.0_all.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", src, os.path.join(root, deb)],
                       check=True, timeout=60, stdout=subprocess.DEVNULL)
        data = open(os.path.join(root, deb), "rb").read()
        entries.append(control + f"Filename: ./{deb}\nSize: {len(data)}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    packages = "\n".join(entries).encode()
    write(os.path.join(root, "Packages"), packages, "wb")
    write(os.path.join(root, "Release"),
          "Origin: bench-pkg\nLabel: bench-pkg\nSuite: bench\nCodename: bench\nArchitectures: all\n"
          f"Date: Thu, 01 Jan 2026 00:00:00 UTC\nSHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n")
    return {"top": names[0], "count": N_DEBS}


def git(work):
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid",
               GIT_AUTHOR_DATE="2026-01-01T00:00:00Z", GIT_COMMITTER_DATE="2026-01-01T00:00:00Z",
               HOME=work, GIT_CONFIG_NOSYSTEM="1")
    src = os.path.join(work, "git-src")
    bare = os.path.join(work, "git", "repo.git")

    def run(*args, cwd=src):
        subprocess.run(["git", *args], cwd=cwd, env=env, check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    os.makedirs(src)
    run("init", "-q", "-b", "main")
    for c in range(GIT_COMMITS):
        for f in range(c % 5, GIT_FILES, 5):
            write(os.path.join(src, f"dir{f % 6}", f"file{f}.txt"), f"commit {c} file {f}\n" + FILLER * 4)
        run("add", "-A")
        run("commit", "-q", "-m", f"commit {c}")
    run("clone", "-q", "--bare", src, bare, cwd=work)
    run("update-server-info", cwd=bare)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=bare, env=env, check=True, timeout=30,
                          capture_output=True, text=True).stdout.strip()
    return {"head": head, "files": GIT_FILES, "commits": GIT_COMMITS}


def main():
    work = sys.argv[1]
    www = os.path.join(work, "www")
    out = {"pip": pypi(www), "npm": npm(www), "apt": apt(www, work), "git": git(work)}
    write(os.path.join(www, "other.test", "index.html"), "not in the policy\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
