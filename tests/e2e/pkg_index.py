"""A PEP 503 simple index of one tiny pure-python wheel, written as static
files under the origins' web root (origins.py's nginx serves them:
https://allowed.test/simple/). The wheel is built here with zipfile (no
build tools, no network): METADATA, WHEEL, RECORD with sha256 hashes.

    /simple/index.html                   the project list
    /simple/egdemo/index.html            one link, with #sha256=
    /packages/egdemo-1.0-py3-none-any.whl
"""
import base64
import hashlib
import zipfile

NAME, VERSION = "egdemo", "1.0"
WHEEL = f"{NAME}-{VERSION}-py3-none-any.whl"
MODULE_TEXT = 'GREETING = "hello from egdemo"\n'


def _record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(path):
    dist = f"{NAME}-{VERSION}.dist-info"
    files = {
        f"{NAME}/__init__.py": MODULE_TEXT.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: egressd-e2e\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{n},{_record_hash(d)},{len(d)}\n" for n, d in files.items()) + f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files.items():
            z.writestr(n, d)
    path.chmod(0o644)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_simple_index(www):
    """Writes the index and the wheel under www (the origins' root)."""
    (www / "packages").mkdir(mode=0o755, exist_ok=True)
    (www / "simple" / NAME).mkdir(mode=0o755, parents=True, exist_ok=True)
    (www / "simple").chmod(0o755)
    digest = build_wheel(www / "packages" / WHEEL)
    page = "<!DOCTYPE html>\n<html><body>\n{}\n</body></html>\n"
    (www / "simple" / "index.html").write_text(page.format(f'<a href="{NAME}/">{NAME}</a>'))
    (www / "simple" / NAME / "index.html").write_text(
        page.format(f'<a href="../../packages/{WHEEL}#sha256={digest}">{WHEEL}</a>'))
    for p in (www / "simple" / "index.html", www / "simple" / NAME / "index.html"):
        p.chmod(0o644)
