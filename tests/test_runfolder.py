"""The run folder: its layout named in one place, the two stores' summaries equal, the model record's
``cacheable`` (and the ``uncached-`` identities of folders written before it), and the errors of a locked,
foreign or missing folder."""

from __future__ import annotations

import json
import math
import re

import pytest

from aesop_bench.cli import main
from aesop_bench.errors import MissingFileError, StoreError
from aesop_bench.evaluation.rows import SET_ROW, MemoryStore
from aesop_bench.evaluation.runfolder import RunFolder, cacheable
from aesop_bench.evaluation.store import ResultStore

PROTOCOL = {"name": "paper", "scale": 4}


def _files(root):
    return {p for p in root.rglob("*") if p.is_file()}


def test_every_file_of_a_run_is_one_the_run_folder_names(bench_root, tmp_path):
    """An evaluation with --save-sr writes exactly the files its RunFolder names, and the reports and the API
    read them there."""
    import aesop_bench as ab
    from aesop_bench.report.runs import read_run

    out = tmp_path / "run"
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr,ssim", "--quiet", "--save-sr",
                 "--out", str(out), "--data-root", str(bench_root), "--no-download"]) == 0
    folder = RunFolder(out)
    images = sorted(p.stem for p in (bench_root / "Set5" / "HR").glob("*.png"))
    named = {folder.run_file, folder.sets_file, folder.rows_file(), folder.per_image_file, folder.summary_file,
             folder.lock_file} | {folder.sr_image("set5", i) for i in images}
    assert _files(out) == named
    assert all(p.is_relative_to(folder.sr_dir) for p in named if p.suffix == ".png")
    run = read_run(out)
    assert run.sr_image("set5", images[0]) == folder.sr_image("set5", images[0])
    assert set(run.images("set5", "psnr")) == set(images)
    assert len(ab.load_run(out)) == 2 * len(images)


def _fill(store):
    """The same values into any store: a whole set, a set with an image recomputed from other files, an image of a
    set-level metric, a set with no record, non-finite values and where each was computed."""
    store.plan_set("set5", {"a": "da", "b": "db"}, "s5", {"source": "pinned"})
    store.add("set5", "a", {"psnr": (30.0, "psnr-v1"), "ssim": (0.8, "ssim-v1")}, "da", on="cpu, 1 thread")
    store.add("set5", "b", {"psnr": (math.inf, "psnr-v1"), "ssim": (0.7, "ssim-v1")}, "db", on="cpu, 2 threads")
    store.add("set5", SET_ROW, {"fid": (12.5, "fid-v1")}, "s5")
    store.plan_set("set14", {"c": "dc", "d": "dd"}, "s14", {})
    store.add("set14", "c", {"psnr": (25.0, "psnr-v1")}, "dc")
    store.add("set14", "d", {"psnr": (26.0, "psnr-v1")}, "old files")
    store.add("unrecorded", "e", {"psnr": (20.0, "psnr-v1"), "niqe": (5.0, "niqe-v0")}, None)
    store.add("unrecorded", "f", {"niqe": (4.0, "niqe-v1")}, None)


def _json(obj):
    return json.dumps(obj, sort_keys=True, default=repr)


def test_the_memory_store_and_the_folder_store_give_equal_summaries(tmp_path):
    args = ({"note": 1}, {"psnr": "psnr-v1", "ssim": "ssim-v1"}, ["set5", "set14"], ["psnr", "ssim", "lpips"])
    memory = MemoryStore({"name": "m", "identity": "m-1"}, PROTOCOL)
    _fill(memory)
    want = memory.finalize(*args)
    assert want["sets"]["set5"]["metrics"] == {"fid": 12.5, "psnr": math.inf, "ssim": pytest.approx(0.75)}
    assert want["sets"]["set14"]["partial"]["psnr"] == {"n": 1, "of": 2, "mean": 25.0, "other_files": 1}
    assert want["sets"]["unrecorded"]["complete"] is None and "niqe" not in want["metric_versions"]

    store = ResultStore(tmp_path / "run", {"name": "m", "identity": "m-1"}, PROTOCOL)
    _fill(store)
    assert _json(store.finalize(*args)) == _json(want)
    store.close()
    again = ResultStore(tmp_path / "run", {"name": "m", "identity": "m-1"}, PROTOCOL)  # read back from the files
    assert _json(again.summary(*args[1:])) == _json(memory.summary(*args[1:]))
    again.close()
    on_disk = RunFolder(tmp_path / "run")
    assert json.loads(on_disk.summary_file.read_text())["sets"]["set5"]["metrics"]["psnr"] == "inf"
    lines = on_disk.per_image_file.read_text().splitlines()[1:]
    assert lines == [",".join([r["set"], r["image"], r["metric"], repr(r["value"]), r["version"], "paper"])
                     for r in memory.table]


def test_digests_are_written_under_the_keys_every_version_reads(tmp_path):
    """Rows and set records keep their on-disk keys (``src``, ``set_source``); the keys ``digest`` and
    ``set_digest`` are read as well."""
    model = {"name": "m", "identity": "m-1"}
    store = ResultStore(tmp_path / "run", model, PROTOCOL)
    store.plan_set("set5", {"a": "da"}, "s5", {})
    store.add("set5", "a", {"psnr": (30.0, "v")}, "da")
    store.close()
    folder = RunFolder(tmp_path / "run")
    assert json.loads(folder.rows_file().read_text())["src"] == "da"
    assert json.loads(folder.sets_file.read_text())["sets"]["set5"]["set_source"] == "s5"

    folder.rows_file().write_text(json.dumps({"set": "set5", "image": "a", "metric": "psnr", "value": 31.0,
                                              "version": "v", "digest": "da"}) + "\n")
    folder.sets_file.write_text(json.dumps({"schema": 1, "sets": {"set5": {"images": {"a": "da"},
                                                                           "set_digest": "s5", "data": {}}}}))
    store = ResultStore(tmp_path / "run", model, PROTOCOL)
    assert store.has("set5", "a", "psnr", "v", "da") and store.sets["set5"]["set_digest"] == "s5"
    assert store.summary()["sets"]["set5"]["metrics"] == {"psnr": 31.0}
    store.close()


def test_a_folder_of_an_unvouched_model_written_before_the_field_reads_as_not_cacheable(tmp_path):
    """``run.json`` of a model in memory nothing vouched for, as earlier versions wrote it (the mark ``uncached-``
    in its identity, no ``cacheable``): not cacheable, so never resumed, not even under the same identity; the
    other ranks of the call that wrote it still share it."""
    old = {"name": "Up", "identity": "module:Up-x4-0f-uncached-111"}
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    folder.run_file.write_text(json.dumps({"schema": 1, "model": old, "protocol": PROTOCOL}))
    folder.rows_file().write_text(json.dumps({"set": "s", "image": "a", "metric": "psnr", "value": 30.0,
                                              "version": "v"}) + "\n")
    assert not cacheable(old) and cacheable({"name": "bicubic", "identity": "bicubic-matlab-uint8-v1"})
    assert not cacheable({"identity": "module:Up-x4-0f", "cacheable": False})
    with pytest.raises(StoreError, match="resumes a run folder only under the identity="):
        ResultStore(folder.path, old, PROTOCOL)
    with pytest.raises(StoreError, match="holds results of model 'Up'"):
        ResultStore(folder.path, {"name": "Up", "identity": "module:Up-x4-0f"}, PROTOCOL, rank=1)
    rank1 = ResultStore(folder.path, {"name": "Up", "identity": "module:Up-x4-0f-uncached-222", "cacheable": False},
                        PROTOCOL, rank=1)
    assert rank1.model["identity"] == old["identity"] and list(rank1.rows) == [("s", "a", "psnr")]


def test_a_model_that_is_not_cacheable_says_so_in_its_record(bench_root, tmp_path):
    """A model object whose ``cacheable`` is false (its identity does not vouch for its outputs) is recorded with
    ``cacheable: false`` and never resumed; a model without the attribute is recorded as before and resumes."""
    import aesop_bench as ab

    from .standin_models import RecordingBicubic

    def unvouched():
        model = RecordingBicubic()
        model.cacheable = False
        return model

    kw = dict(sets="set5", metrics="psnr", data_root=bench_root, download=False, progress=False)
    first = ab.evaluate(unvouched(), out=tmp_path / "a", **kw)
    assert first.summary["model"]["cacheable"] is False
    assert json.loads(RunFolder(tmp_path / "a").run_file.read_text())["model"]["cacheable"] is False
    with pytest.raises(StoreError, match="resumes a run folder only under the identity="):
        ab.evaluate(unvouched(), out=tmp_path / "a", **kw)
    vouched = ab.evaluate(RecordingBicubic(), out=tmp_path / "b", **kw)
    assert "cacheable" not in vouched.summary["model"]
    again = RecordingBicubic()
    assert ab.evaluate(again, out=tmp_path / "b", **kw).summary["sets"] == vouched.summary["sets"]
    assert again.calls == []  # every value resumed
    assert vouched.summary["sets"]["set5"]["metrics"] == first.summary["sets"]["set5"]["metrics"]


def test_a_locked_folder_is_a_store_error_naming_it_and_a_missing_one_a_missing_file_error(tmp_path):
    import aesop_bench as ab
    from aesop_bench.report.runs import read_run

    run = tmp_path / "run"
    first = ResultStore(run, {"name": "m", "identity": "m-1"}, PROTOCOL)
    with pytest.raises(StoreError, match=re.escape(f"{run} is being written by another evaluation")):
        ResultStore(run, {"name": "m", "identity": "m-1"}, PROTOCOL)
    first.close()
    ResultStore(run, {"name": "m", "identity": "m-1"}, PROTOCOL).close()  # free again
    with pytest.raises(MissingFileError, match="run.json is missing"):
        ResultStore(tmp_path / "other", {"name": "m", "identity": "m-1"}, PROTOCOL, rank=1)
    for read in (read_run, ab.load_run):
        with pytest.raises(MissingFileError, match=re.escape(f"{tmp_path / 'none'}: no ")):
            read(tmp_path / "none")


def test_a_failed_run_leaves_no_folder_it_made(tmp_path):
    """Closing with ``discard_empty`` removes the folder (and parents) that opening made, while it holds no
    value; a folder holding values, or one that was there before, stays."""
    store = ResultStore(tmp_path / "a" / "b" / "run", {"name": "m", "identity": "m-1"}, PROTOCOL)
    store.plan_set("set5", {"x": "d"}, "s", {})
    store.close(discard_empty=True)
    assert not (tmp_path / "a").exists()
    store = ResultStore(tmp_path / "run", {"name": "m", "identity": "m-1"}, PROTOCOL)
    store.add("set5", "x", {"psnr": (1.0, "v")}, "d")
    store.close(discard_empty=True)
    folder = RunFolder(tmp_path / "run")
    assert _files(folder.path) == {folder.rows_file(), folder.run_file, folder.lock_file}
