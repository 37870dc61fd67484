"""The weights manager: manifest, verified downloads (file:// and a local server), add, offline errors, safe loading."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest
import torch

from aesop_bench import download, weights
from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError


def _manifest(tmp_path, monkeypatch, entries):
    p = tmp_path / "manifest.json"
    p.write_text(json.dumps({"entries": entries}))
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(p))


def _blob(tmp_path, name="w.pth", seed=0):
    path = tmp_path / "src" / name
    path.parent.mkdir(exist_ok=True)
    torch.save({"weight": torch.randn(4, 4, generator=torch.Generator().manual_seed(seed))}, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_shipped_manifest_is_complete():
    m = weights.manifest()
    for name in ("alexnet", "vgg16", "vgg19", "lpips_alex_v0.1", "dists_alpha_beta", "pt_inception",
                 "niqe_pristine", "maniqa_koniq", "musiq_koniq", "rrdb_psnr", "esrgan_official", "swinir_m_x4"):
        assert name in m, name
        e = m[name]
        assert e.licence and e.used_by
        assert e.urls or e.manual
        assert e.sha256 is None or len(e.sha256) == 64


def test_published_hash_matches_the_real_niqe_file(shared_data):
    e = weights.entry("niqe_pristine")
    assert weights.check(e, shared_data / "weights" / "niqe" / "modelparameters.mat").status == "verified"


def test_download_pinned_from_file_url(tmp_path, monkeypatch):
    src, digest = _blob(tmp_path)
    _manifest(tmp_path, monkeypatch, [{"name": "toy", "file": "toy.pth", "urls": [src.as_uri()], "sha256": digest}])
    path = weights.download("toy", log=None)
    assert path.read_bytes() == src.read_bytes()
    assert weights.check(weights.entry("toy")).status == "verified"
    assert torch.equal(weights.load_state_dict(path)["weight"], torch.load(src)["weight"])


def test_digest_is_the_one_hash_that_names_a_weights_file(tmp_path, monkeypatch):
    """What versions and cache folders name weights by: an entry's cached file, or (``path_ok``) a checkpoint path
    taken first; None where the file is absent or the name is no entry; memoised on disk for files over 1 MB."""
    from aesop_bench.paths import hashes_dir, weights_dir

    src, digest = _blob(tmp_path)
    _manifest(tmp_path, monkeypatch, [{"name": "toy", "file": "toy.pth", "urls": [src.as_uri()], "sha256": digest}])
    assert weights.digest("toy") is None and weights.digest("nope") is None
    weights.download("toy", log=None)
    assert weights.digest("toy") == digest == weights.digest(str(src), path_ok=True)
    assert weights.digest(str(src)) is None  # a path only where paths are allowed
    monkeypatch.chdir(tmp_path / "src")
    assert weights.digest("w.pth", path_ok=True) == digest and weights.digest("w.pth") is None
    big = weights_dir() / "big.pth"
    big.write_bytes(b"\0" * (2 << 20))
    assert weights.digest(str(big), path_ok=True) == hashlib.sha256(big.read_bytes()).hexdigest()
    assert str(big.resolve()) in (hashes_dir() / "hashes.json").read_text()


def test_unpinned_hash_is_recorded_and_then_enforced(tmp_path, monkeypatch, server):  
    www, url, _ = server
    src, digest = _blob(tmp_path)
    (www / "toy.pth").write_bytes(src.read_bytes())
    _manifest(tmp_path, monkeypatch, [{"name": "toy", "file": "toy.pth", "urls": [f"{url}/toy.pth"], "sha256": None}])
    said = []
    weights.download("toy", log=said.append)
    assert "recorded" in said[0] and digest in said[0]
    assert weights.check(weights.entry("toy")).status == "recorded"
    # the cached file is later replaced by something else: refused
    weights.cache_path(weights.entry("toy")).write_bytes(b"tampered")
    assert weights.check(weights.entry("toy")).status == "mismatch"
    with pytest.raises(AesopBenchError, match="expected"):
        weights.require("toy")


def test_a_truncated_download_without_length_is_never_trusted(tmp_path, monkeypatch, server):
    # a server that sends half the file with no Content-Length and closes: the client sees a complete response
    www, url, handler = server
    src, digest = _blob(tmp_path)
    (www / "toy.pth").write_bytes(src.read_bytes())
    _manifest(tmp_path, monkeypatch, [{"name": "toy", "file": "toy.pth", "urls": [f"{url}/toy.pth"], "sha256": None}])
    handler.no_length = True
    handler.cut_after = src.stat().st_size // 2
    with pytest.raises(AesopBenchError, match="not a complete toy file"):
        weights.download("toy", log=None)
    assert not weights.cache_path(weights.entry("toy")).exists()
    assert weights.expected_hash(weights.entry("toy")) == (None, "unpinned")  # nothing recorded
    # the whole file, next time, is accepted and becomes the recorded one
    assert weights.download("toy", log=None).read_bytes() == src.read_bytes()
    assert weights.expected_hash(weights.entry("toy"))[0] == digest


def test_add_loads_the_file_as_its_entry_before_trusting_it_and_forget_undoes_a_record(tmp_path, monkeypatch,
                                                                                      capsys):
    from aesop_bench.models.archs.rrdbnet_arch import RRDBNet

    real = tmp_path / "AESOP_RRDB128_290K.pth"
    torch.save({"params_ema": RRDBNet(num_block=1).state_dict()}, real)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(pickle.dumps({"not": "a model"}))
    small = tmp_path / "other_net.pth"
    torch.save({"params_ema": {"conv.weight": torch.zeros(2, 2)}}, small)
    _manifest(tmp_path, monkeypatch, [{"name": "aesop_rrdb", "file": "AESOP_RRDB128_290K.pth", "urls": [],
                                       "sha256": None, "used_by": ["zoo: aesop_rrdb"]}])
    # the zoo's aesop_rrdb is a full RRDBNet (23 blocks): a one-block file is refused too
    for bad in (junk, small, real):
        assert main(["weights", "add", "aesop_rrdb", str(bad)]) == 2
        assert "is not a aesop_rrdb file, so it is not added" in capsys.readouterr().err
    assert weights.expected_hash(weights.entry("aesop_rrdb")) == (None, "unpinned")
    good = tmp_path / "good.pth"
    torch.save({"params_ema": RRDBNet().state_dict()}, good)
    assert main(["weights", "add", "aesop_rrdb", str(good)]) == 0
    assert weights.check(weights.entry("aesop_rrdb")).status == "recorded"
    # a wrongly recorded file: the mismatch names the way out, and forget takes it
    other = tmp_path / "retrained.pth"
    torch.save({"params_ema": RRDBNet().state_dict()}, other)
    assert main(["weights", "add", "aesop_rrdb", str(other)]) == 2
    assert "weights forget aesop_rrdb" in capsys.readouterr().err
    assert main(["weights", "forget", "aesop_rrdb"]) == 0
    assert not weights.cache_path(weights.entry("aesop_rrdb")).exists()
    assert main(["weights", "add", "aesop_rrdb", str(other)]) == 0
    assert weights.check(weights.entry("aesop_rrdb")).status == "recorded"
    assert main(["weights", "forget", "niqe_pristine"]) == 2  # a published hash is never forgotten
    assert "published" in capsys.readouterr().err


def test_wrong_file_is_refused_and_falls_back_to_the_next_url(tmp_path, monkeypatch):
    good, digest = _blob(tmp_path, "good.pth", 0)
    bad, _ = _blob(tmp_path, "bad.pth", 1)
    _manifest(tmp_path, monkeypatch, [{"name": "toy", "file": "toy.pth", "urls": [bad.as_uri(), good.as_uri()],
                                       "sha256": digest}])
    assert weights.download("toy", log=None).read_bytes() == good.read_bytes()


def test_hash_prefix_in_file_name_is_checked(tmp_path, monkeypatch):
    src, digest = _blob(tmp_path)
    _manifest(tmp_path, monkeypatch, [{"name": "tv", "file": "tv-0000beef.pth", "urls": [src.as_uri()],
                                       "sha256": None, "sha256_prefix": "0000beef"}])
    with pytest.raises(AesopBenchError, match="does not start with 0000beef"):
        weights.download("tv", log=None)
    _manifest(tmp_path, monkeypatch, [{"name": "tv", "file": f"tv-{digest[:8]}.pth", "urls": [src.as_uri()],
                                       "sha256": None, "sha256_prefix": digest[:8]}])
    weights.download("tv", log=None)


def test_offline_missing_file_is_one_clear_error(tmp_path, monkeypatch):
    _manifest(tmp_path, monkeypatch, [{"name": "toy", "file": "toy.pth", "urls": ["https://example.org/toy.pth"],
                                       "sha256": "a" * 64}])
    with pytest.raises(AesopBenchError) as exc:
        weights.require("toy")
    msg = str(exc.value)
    assert "toy.pth" in msg and "https://example.org/toy.pth" in msg and "aesop-bench weights add toy" in msg


def test_add_checks_the_file(tmp_path, monkeypatch, capsys):
    src, digest = _blob(tmp_path)
    other, _ = _blob(tmp_path, "other.pth", 3)
    _manifest(tmp_path, monkeypatch, [{"name": "toy", "file": "toy.pth", "urls": [], "sha256": digest}])
    assert main(["weights", "add", "toy", str(other)]) == 2
    assert "is not toy.pth" in capsys.readouterr().err
    assert main(["weights", "add", "toy", str(src)]) == 0
    assert weights.check(weights.entry("toy")).status == "verified"
    assert main(["weights", "verify", "toy"]) == 0
    assert "verified" in capsys.readouterr().out


def test_google_drive_urls_are_translated():
    assert download.http_url("gdrive://abc123").startswith("https://drive.usercontent.google.com/download?id=abc123")


def _drive_listing(entries):
    """A Google Drive embedded folder view (the markup of drive.google.com/embeddedfolderview) for the entries
    ``(id, name, is_folder)``."""
    rows = []
    for item_id, name, is_folder in entries:
        href = (f"https://drive.google.com/drive/folders/{item_id}" if is_folder
                else f"https://drive.google.com/file/d/{item_id}/view?usp=drive_web")
        rows.append(f'<div class="flip-entry" id="entry-{item_id}" tabindex="0" role="link"><div class="flip-entry-info">'
                    f'<a href="{href}" target="_blank"><div class="flip-entry-visual"></div>'
                    f'<div class="flip-entry-title">{name}</div></a></div>'
                    '<div class="flip-entry-last-modified"><div>Apr 25</div></div></div>')
    return "<!DOCTYPE html><html><body><div class=\"flip-entries\">" + "".join(rows) + "</div></body></html>"


def test_files_in_google_drive_folders_are_found_by_name(tmp_path, monkeypatch, server):  
    www, url, _ = server
    src, digest = _blob(tmp_path)
    (www / "folders").mkdir()
    (www / "files").mkdir()
    (www / "folders" / "ROOT_ID.html").write_text(_drive_listing([("SUB_ID", "models &amp; logs", True),
                                                                   ("README_ID", "README.txt", False)]))
    (www / "folders" / "SUB_ID.html").write_text(_drive_listing([("FILE_ID-x_1", "AESOP_RRDB128_290K.pth", False)]))
    (www / "files" / "FILE_ID-x_1").write_bytes(src.read_bytes())
    monkeypatch.setenv("AESOP_BENCH_GDRIVE_LIST", url + "/folders/{id}.html")
    monkeypatch.setenv("AESOP_BENCH_GDRIVE_FILE", url + "/files/{id}")
    assert download.gdrive_folder_entries("ROOT_ID") == [("SUB_ID", "models & logs", True),
                                                        ("README_ID", "README.txt", False)]
    assert download.resolve_gdrive_folder("gdrive-folder://ROOT_ID/models & logs/AESOP_RRDB128_290K.pth") == \
        "gdrive://FILE_ID-x_1"
    _manifest(tmp_path, monkeypatch, [
        {"name": "toy", "file": "toy.pth", "urls": ["gdrive-folder://ROOT_ID/AESOP_RRDB128_290K.pth"], "sha256": digest},
        {"name": "gone", "file": "gone.pth", "urls": ["gdrive-folder://ROOT_ID/gone.pth"], "sha256": None}])
    assert weights.download("toy", log=None).read_bytes() == src.read_bytes()  # found in the subfolder
    with pytest.raises(AesopBenchError, match=r"(?s)gone.pth is not in the Google Drive folder.*by hand \(https://drive.google.com/drive/folders/"
                                             r"ROOT_ID\).*weights add gone"):
        weights.download("gone", log=None)


def test_google_drive_files_go_through_gdown(tmp_path, monkeypatch):
    """Without a mirror, Drive files and folder entries are fetched with gdown (its network calls stood in for
    here): the folder's listing names the file, gdown downloads it by id, the sha256 is checked as for any URL, and
    a file that does not match is deleted."""
    import shutil
    import types

    import gdown

    src, digest = _blob(tmp_path)
    calls = []

    def listing(id=None, output=None, quiet=False, skip_download=False, **kw):
        calls.append(("list", id, skip_download))
        return [types.SimpleNamespace(id="README_ID", path="README.txt", local_path=""),
                types.SimpleNamespace(id="FILE_ID", path="models & logs/AESOP_RRDB128_290K.pth", local_path="")]

    def fetch_file(id=None, output=None, quiet=False, resume=False, **kw):
        calls.append(("get", id, resume))
        shutil.copy(src if id == "FILE_ID" else tmp_path / "src" / "other.pth", output)
        return output

    monkeypatch.setattr(gdown, "download_folder", listing)
    monkeypatch.setattr(gdown, "download", fetch_file)
    _blob(tmp_path, "other.pth", seed=1)
    _manifest(tmp_path, monkeypatch, [
        {"name": "toy", "file": "toy.pth", "urls": ["gdrive-folder://ROOT_ID/models & logs/AESOP_RRDB128_290K.pth"],
         "sha256": digest},
        {"name": "wrong", "file": "wrong.pth", "urls": ["gdrive://OTHER_ID"], "sha256": digest}])
    assert weights.download("toy", log=None).read_bytes() == src.read_bytes()
    assert calls == [("list", "ROOT_ID", True), ("get", "FILE_ID", True)]
    with pytest.raises(AesopBenchError, match="sha256 mismatch"):
        weights.download("wrong", log=None)
    assert not weights.cache_path(weights.entry("wrong")).exists()


def test_html_page_instead_of_the_file_is_refused(tmp_path, monkeypatch):
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><html><body>Google Drive can't scan this file</body></html>")
    _manifest(tmp_path, monkeypatch, [{"name": "toy", "file": "toy.pth", "urls": [page.as_uri()], "sha256": None}])
    with pytest.raises(AesopBenchError, match="web page"):
        weights.download("toy", log=None)


class _Evil:
    def __reduce__(self):
        return (print, ("this would run",))


def test_pickled_code_is_never_loaded(tmp_path):
    p = tmp_path / "evil.pth"
    with open(p, "wb") as f:
        pickle.dump({"params": _Evil()}, f)
    with pytest.raises(AesopBenchError, match="pickled Python objects"):
        weights.load_state_dict(p)


def test_safetensors_are_loaded(tmp_path):
    from safetensors.torch import save_file

    t = {"a": torch.arange(6.0).view(2, 3)}
    save_file(t, tmp_path / "x.safetensors")
    assert torch.equal(weights.load_state_dict(tmp_path / "x.safetensors")["a"], t["a"])


class _Traced(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.blocks = torch.nn.Sequential(torch.nn.Conv2d(4, 2, 1).double(), torch.nn.ReLU())
        self.scale = torch.nn.Parameter(torch.arange(3.0))
        self.register_buffer("steps", torch.tensor([7], dtype=torch.int64))

    def forward(self, x):
        h = self.bn(self.conv(x))
        return self.blocks(h.double()).sum() + self.scale.sum() + self.steps.sum()


def test_torchscript_tensors_are_read_without_jit_load(tmp_path, monkeypatch):
    """The tensors of a torch.jit archive, as torch.jit.load(...).state_dict() gives them (names, dtypes,
    values, non-contiguous views), read by the restricted loader; a foreign global in data.pkl is refused."""
    import zipfile

    torch.manual_seed(0)
    net = _Traced()
    net.bn.running_mean.uniform_()
    p = tmp_path / "traced.pt"
    torch.jit.save(torch.jit.trace(net, torch.rand(1, 3, 8, 8)), str(p))
    want = torch.jit.load(str(p)).state_dict()
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("torch.jit.load was called"))
    assert weights.is_torchscript(p)
    got = weights.load_state_dict(p)
    assert list(got) == list(want)
    assert all(got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]) for k in want)

    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(p) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("/data.pkl"):
                data = pickle.dumps(_Evil(), protocol=2)
            dst.writestr(item, data)
    with pytest.raises(AesopBenchError, match="refers to __builtin__.print, which is not a tensor"):
        weights.load_state_dict(bad)


def test_manifest_file_names_cannot_overwrite_the_cache_or_each_other(tmp_path, monkeypatch, shared_data):
    src, digest = _blob(tmp_path)
    _manifest(tmp_path, monkeypatch, [{"name": "evil", "file": "recorded.json", "urls": [src.as_uri()]}])
    with pytest.raises(AesopBenchError, match="'recorded.json' is a name the weights cache keeps for itself"):
        weights.manifest()
    _manifest(tmp_path, monkeypatch, [{"name": "a", "file": "same.pth", "urls": [src.as_uri()]},
                                      {"name": "b", "file": "same.pth", "urls": [src.as_uri()]}])
    with pytest.raises(AesopBenchError, match="'a' and 'b' share the file 'same.pth'"):
        weights.manifest()
    _manifest(tmp_path, monkeypatch, [{"name": "a", "file": "pt_inception-2015-12-05-6726825d.pth",
                                       "urls": [src.as_uri()]}])  # a shipped entry's file
    with pytest.raises(AesopBenchError, match="share the file"):
        weights.manifest()


def test_an_unpinned_mat_file_is_loaded_before_it_is_trusted(tmp_path, monkeypatch, shared_data):
    real = shared_data / "weights" / "niqe" / "modelparameters.mat"
    cut = tmp_path / "src" / "cut.mat"
    cut.parent.mkdir()
    cut.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    _manifest(tmp_path, monkeypatch, [{"name": "model", "file": "model.mat", "urls": [cut.as_uri()]}])
    with pytest.raises(AesopBenchError, match="not a readable MATLAB file"):
        weights.download("model", log=None)
    assert not weights.recorded_path().is_file() or "model" not in json.loads(weights.recorded_path().read_text())
    _manifest(tmp_path, monkeypatch, [{"name": "model", "file": "model.mat", "urls": [real.as_uri()]}])
    assert weights.download("model", log=None).read_bytes() == real.read_bytes()


def test_damaged_trust_records_are_a_clear_error(tmp_path, monkeypatch):
    src, _ = _blob(tmp_path)
    _manifest(tmp_path, monkeypatch, [{"name": "toy", "file": "toy.pth", "urls": [src.as_uri()]}])
    weights.download("toy", log=None)
    for content in (b"\xff\xfe not utf-8", b'["a", "b"]', b'{"toy": 3}'):
        weights.recorded_path().write_bytes(content)
        with pytest.raises(AesopBenchError, match="recorded.json: cannot read the recorded hashes"):
            weights.check(weights.entry("toy"))


def test_weights_list_says_how_each_file_is_verified(tmp_path, monkeypatch, capsys):
    """`weights list`: per entry, whether the file is here and whether its hash is published (pinned), a published
    prefix, recorded at the first download, or still to be recorded."""
    from aesop_bench.cli import main

    src, digest = _blob(tmp_path)
    _manifest(tmp_path, monkeypatch, [
        {"name": "pinned", "file": "p.pth", "urls": [src.as_uri()], "sha256": digest},
        {"name": "prefixed", "file": f"x-{digest[:8]}.pth", "urls": [src.as_uri()], "sha256_prefix": digest[:8]},
        {"name": "unpinned", "file": "u.pth", "urls": [src.as_uri()], "sha256": None}])
    weights.download("unpinned", log=None)
    assert main(["weights", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:3] for line in lines if line.split()[0] in ("pinned", "prefixed",
                                                                                        "unpinned")}
    assert rows == {"pinned": ["absent", "pinned"], "prefixed": ["absent", "prefix"],
                    "unpinned": ["recorded", "recorded"]}
    # a header, and every column starting where its header does
    header = lines[0]
    assert header.split()[:3] == ["name", "file", "hash"]
    starts = [header.index(h) for h in ("file", "hash", "file name")]  # (the test entries have no licence)
    table = [line for line in lines[1:] if line.split()[0] in rows]
    assert all(line[s - 1] == " " and line[s] != " " for line in table for s in starts), table


def test_the_checkout_weights_readme_matches_the_manifest():
    """weights/README.md lists every shipped entry with its source, licence and hash status, as the manifest
    says (regenerate it with the command it names when the manifest changes)."""
    from aesop_bench.weights.manifest import readme, shipped

    text = (Path(__file__).resolve().parents[1] / "weights" / "README.md").read_text()
    assert text == readme()
    assert all(f"| {name} | `{e.file}` |" in text for name, e in shipped().items())


def test_a_checkout_stores_weights_in_its_weights_folder(monkeypatch, tmp_path):
    """From a checkout with no $AESOP_BENCH_HOME, weights go to the checkout's weights/ (git ignores all but its
    README); $AESOP_BENCH_HOME keeps them under it, and $AESOP_BENCH_WEIGHTS overrides both."""
    import subprocess

    from aesop_bench.paths import weights_dir

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.delenv("AESOP_BENCH_HOME", raising=False)
    monkeypatch.delenv("AESOP_BENCH_WEIGHTS", raising=False)
    assert weights_dir() == repo / "weights"
    monkeypatch.setenv("AESOP_BENCH_HOME", str(tmp_path / "home"))
    assert weights_dir() == tmp_path / "home" / "weights"
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS", str(tmp_path / "w"))
    assert weights_dir() == tmp_path / "w"
    if (repo / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "weights/net.pth", "weights/README.md"], cwd=repo,
                                 capture_output=True, text=True).stdout.split()
        assert ignored == ["weights/net.pth"]
