"""`aesop-bench iqa-alignment`: pairwise accuracy (tie rule, direction, bootstrap), MOS correlations equal to
IQA-PyTorch's, the HGGT and SBS readers, complementarity, the score cache, the command end to end, bad input."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from aesop_bench.cli import main
from aesop_bench.data.preference import (ARCHIVES, PinnedArchive, fetch_archive, hggt_pairs, read_mos, read_pairs,
                                         sbs_pairs)
from aesop_bench.errors import AesopBenchError, ConfigError, InputError, MissingFileError
from aesop_bench.imageio import write_image
from aesop_bench.report.alignment import (Scorer, bootstrap_ci, check_metrics, complementarity, correlations,
                                          outcomes, run_alignment)


def _image(path: Path, seed: int, size: int = 64) -> Path:
    g = torch.Generator().manual_seed(seed)
    write_image(path, torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8))
    return path


def _sbs_csv(folder: Path, rows: list[tuple[str, str, int, int]], name: str = "pairs.csv") -> Path:
    path = folder / name
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_a", "image_b", "votes_a", "votes_b"])
        w.writerows(rows)
    return path


def _hggt_label(path: Path, name: str, labels: list[str]) -> None:
    """One annotator's label file in HGGT's README format."""
    doc = {"Picture_1": {"Name": f"{name}.png", "File": "original", "Label": None}}
    for i, (gt, label) in enumerate(zip(("01", "02", "03", "04"), labels)):
        doc[f"Picture_{i + 2}"] = {"Name": f"{name}_{gt}.png", "File": gt, "Label": label}
    doc["Time_cost"] = {"Start": "2022-01-01 00:00:00", "End": "2022-01-01 00:01:00"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def _hggt_set(root: Path, name: str, votes: dict[str, list[str]], seed: int = 0, size: int = 64) -> None:
    """``root/images/{original,01..04}/`` and ``root/labels/{A,B,C}/NAME.json``; ``votes[annotator]`` = the
    labels of 01..04."""
    _image(root / "images" / "original" / f"{name}.png", seed, size)
    for k, gt in enumerate(("01", "02", "03", "04")):
        _image(root / "images" / gt / f"{name}_{gt}.png", seed * 10 + k + 1, size)
    for annotator, labels in votes.items():
        _hggt_label(root / "labels" / annotator / f"{name}.json", name, labels)


# votes of A, B, C for 01..04: 01 P,P,N -> Positive; 02 N,N,S -> Negative; 03 P,S,N -> Similar (all differ);
# 04 S,S,P -> Similar
VOTES = {"A": ["Positive", "Negative", "Positive", "Similar"],
         "B": ["Positive", "Negative", "Similar", "Similar"],
         "C": ["Negative", "Similar", "Negative", "Positive"]}


class Fake:
    """A score function from a table ``{file name: score}``, counting its calls."""

    def __init__(self, table: dict[str, float]):
        self.table, self.calls = table, 0

    def __call__(self, path: Path) -> float:
        self.calls += 1
        return self.table[Path(path).name]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- accuracy, ties, direction, bootstrap


def test_seven_of_ten_right_is_0_7_through_the_whole_analysis(tmp_path):
    names = [f"{i}.png" for i in range(20)]
    for i, n in enumerate(names):
        _image(tmp_path / n, i, 8)
    # pair i: a = 2i, b = 2i+1; people prefer a on even i, b on odd i; the fake metric gives a 1 and b 0, so it
    # prefers a everywhere; flip three of the b-preferred pairs' scores so it gets 7 right in all
    rows, table = [], {}
    for i in range(10):
        a, b = names[2 * i], names[2 * i + 1]
        rows.append((a, b, 5, 1) if i % 2 == 0 else (a, b, 1, 5))
        table[a], table[b] = (0.0, 1.0) if i in (1, 3, 5) else (1.0, 0.0)
    # right: the 5 a-preferred pairs and pairs 1, 3, 5 -> 8; make pair 0 wrong -> 7
    table[names[0]], table[names[1]] = 0.0, 1.0
    pairs = _sbs_csv(tmp_path, rows)
    fake = Scorer("fake", "fake-v1", False, Fake(table))
    res = run_alignment([f"sbs:{pairs}"], out=tmp_path / "out", scorers=[fake], n_boot=200)
    (row,) = _rows(tmp_path / "out" / "pairwise.csv")
    assert float(row["accuracy"]) == pytest.approx(0.7)
    assert int(row["right"]) == 7 and int(row["pairs"]) == 10 and int(row["ties"]) == 0
    assert float(row["ci_low"]) <= 0.7 <= float(row["ci_high"])
    assert res["result"]["tie_rule"] == "a tie in metric scores counts as half correct"
    assert "counts as half correct" in (tmp_path / "out" / "pairwise.md").read_text()


def test_ties_count_half_or_wrong_and_lower_better_flips_the_direction():
    a = np.array([5.0, 1.0, 2.0, 2.0, 7.0, 3.0])
    b = np.array([1.0, 5.0, 2.0, 2.0, 0.0, 4.0])
    winner = np.array([0, 1, 0, 1, 1, 0])
    # higher better: right on pairs 0, 1; ties 2, 3; wrong 4, 5
    assert outcomes(a, b, winner, False, "half").tolist() == [1, 1, 0.5, 0.5, 0, 0]
    assert outcomes(a, b, winner, False, "half").mean() == pytest.approx(3 / 6)
    assert outcomes(a, b, winner, False, "wrong").mean() == pytest.approx(2 / 6)
    # lower better: the strict pairs swap, the ties stay ties
    assert outcomes(a, b, winner, True, "half").tolist() == [0, 0, 0.5, 0.5, 1, 1]
    assert outcomes(a, b, winner, True, "wrong").tolist() == [0, 0, 0, 0, 1, 1]
    with pytest.raises(ConfigError, match="ties='draw'"):
        outcomes(a, b, winner, False, "draw")


def test_the_registry_direction_is_used(tmp_path):
    """NIQE is lower-better in the registry: a Scorer built for it compares as such; the pairwise table says so."""
    for i, n in enumerate(("x.png", "y.png")):
        _image(tmp_path / n, i, 8)
    pairs = _sbs_csv(tmp_path, [("x.png", "y.png", 3, 0)])
    low = Scorer("low", "low-v1", True, Fake({"x.png": 1.0, "y.png": 2.0}))
    high = Scorer("high", "high-v1", False, Fake({"x.png": 1.0, "y.png": 2.0}))
    run_alignment([f"sbs:{pairs}"], out=tmp_path / "o", scorers=[low, high], n_boot=0)
    acc = {r["metric"]: float(r["accuracy"]) for r in _rows(tmp_path / "o" / "pairwise.csv")}
    assert acc == {"low": 1.0, "high": 0.0}
    assert "niqe" in check_metrics("nr") and "psnr" not in check_metrics("nr")
    with pytest.raises(ConfigError, match="psnr is a full_reference metric"):
        check_metrics("niqe,psnr")


def test_bootstrap_interval_holds_the_estimate_and_repeats_with_its_seed():
    x = np.array([1.0] * 13 + [0.0] * 7 + [0.5] * 4)
    point = x.mean()
    lo, hi = bootstrap_ci(x, 1000, 0.95, seed=3)
    assert lo <= point <= hi and lo < hi
    assert bootstrap_ci(x, 1000, 0.95, seed=3) == (lo, hi)
    assert bootstrap_ci(x, 1000, 0.95, seed=4) != (lo, hi)
    lo90, hi90 = bootstrap_ci(x, 1000, 0.90, seed=3)
    assert lo <= lo90 and hi90 <= hi  # the same draws: a lower level gives a narrower interval
    assert bootstrap_ci(np.ones(9), 50, 0.95, 0) == (1.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_ci(x, 0))
    with pytest.raises(ConfigError, match="level"):
        bootstrap_ci(x, 10, 95)


# ---------------------------------------------------------------- correlations


def test_correlations_equal_iqa_pytorch_and_scipy():
    from scipy import stats
    from scipy.optimize import curve_fit

    pred = np.array([3.1, 4.7, 2.2, 6.0, 5.5, 1.0, 3.9, 7.2, 4.1, 2.8, 6.6, 5.0])
    mos = np.array([30.0, 52.0, 25.0, 71.0, 60.0, 12.0, 41.0, 80.0, 47.0, 33.0, 69.0, 55.0])
    got = correlations(pred, mos)

    def logistic(x, b1, b2, b3, b4):
        return (b1 - b2) / (1 + np.exp(-(x - b3) / b4)) + b2

    betas, _ = curve_fit(logistic, pred, mos, p0=[mos.max(), mos.min(), pred.mean(), pred.std() / 4])
    assert got["plcc"] == pytest.approx(stats.pearsonr(logistic(pred, *betas), mos)[0], abs=1e-12)
    assert got["srcc"] == pytest.approx(stats.spearmanr(pred, mos)[0], abs=1e-12)
    assert got["krcc"] == pytest.approx(stats.kendalltau(pred, mos)[0], abs=1e-12)
    pyiqa_cc = pytest.importorskip("pyiqa.metrics.correlation_coefficient")
    assert got["plcc"] == pytest.approx(pyiqa_cc.calculate_plcc(pred, mos, "logistic_4params"), abs=1e-12)
    assert got["srcc"] == pytest.approx(pyiqa_cc.calculate_srcc(pred, mos), abs=1e-12)
    assert got["krcc"] == pytest.approx(pyiqa_cc.calculate_krcc(pred, mos), abs=1e-12)
    # a lower-better score is not negated: its rank correlations are the negatives
    flipped = correlations(-pred, mos)
    assert flipped["srcc"] == pytest.approx(-got["srcc"]) and flipped["krcc"] == pytest.approx(-got["krcc"])


# ---------------------------------------------------------------- readers


def test_hggt_pairs_from_label_files_in_hggt_format(tmp_path):
    root = tmp_path / "Test-100"
    _hggt_set(root, "0001", VOTES, seed=1, size=8)
    ps = read_pairs(f"hggt:{root}")
    assert [(p.a.name, p.b.name, p.winner) for p in ps.pairs] == [("0001.png", "0001_01.png", 1),
                                                                 ("0001.png", "0001_02.png", 0)]
    assert ps.excluded == 2 and "Similar -> excluded" in ps.rule
    # one annotator's file names its set; HGGT's Test/ layout (GT/<set>/{images,labels}) reads the same pairs
    one = hggt_pairs(root / "labels" / "B" / "0001.json")
    assert [(p.b.name, p.winner) for p in one.pairs] == [("0001_01.png", 1), ("0001_02.png", 0)]
    test = tmp_path / "Test"
    _hggt_set(test / "GT" / "Test-100", "0002", VOTES, seed=2, size=8)
    assert [(p.b.name, p.winner) for p in hggt_pairs(test).pairs] == [("0002_01.png", 1), ("0002_02.png", 0)]


def test_sbs_pairs_majority_wins_and_equal_votes_are_left_out(tmp_path):
    for n in ("a.png", "b.png", "c.png"):
        _image(tmp_path / n, 0, 8)
    path = _sbs_csv(tmp_path, [("a.png", "b.png", 4, 1), ("b.png", "c.png", 0, 3), ("a.png", "c.png", 2, 2)])
    ps = sbs_pairs(path)
    assert [(p.a.name, p.b.name, p.winner) for p in ps.pairs] == [("a.png", "b.png", 0), ("b.png", "c.png", 1)]
    assert ps.excluded == 1


def test_mos_csv_and_both_pipal_layouts(tmp_path):
    _image(tmp_path / "im" / "p.png", 1, 8)
    (tmp_path / "mos.csv").write_text("image,mos,std\nim/p.png,3.5,0.2\n")
    m = read_mos(str(tmp_path / "mos.csv"))
    assert m.images == [tmp_path / "im" / "p.png"] and m.mos == [3.5]
    iqa = tmp_path / "PIPAL"
    _image(iqa / "Dist_Imgs" / "A0001_00_00.bmp.png", 2, 8)
    (tmp_path / "meta_info").mkdir()
    (tmp_path / "meta_info" / "meta_info_PIPALDataset.csv").write_text(
        "ref_name,dist_name,mos,official_split\nA0001.bmp,A0001_00_00.bmp.png,1450.5,train\n")
    m = read_mos(f"pipal:{iqa}")
    assert m.images == [iqa / "Dist_Imgs" / "A0001_00_00.bmp.png"] and m.mos == [1450.5]
    own = tmp_path / "own"
    _image(own / "Train_Dist" / "A0002_01_01.png", 3, 8)
    (own / "Train_Label").mkdir()
    (own / "Train_Label" / "A0002.txt").write_text("A0002_01_01.png,1399.25\n")
    assert read_mos(f"pipal:{own}").mos == [1399.25]


def test_pipal_archive_is_pinned_and_fetched_verified_from_a_stand_in(tmp_path):
    pin = ARCHIVES["pipal"]
    assert pin.url == "https://huggingface.co/datasets/chaofengc/IQA-PyTorch-Datasets/resolve/main/pipal.tar"
    assert pin.sha256 == "6bcb713ba0f9ad9ff6c11fc4c680ec88e633a674d16dc9d0700786d24b40f6b4"
    assert pin.bytes == 5_843_353_600
    src = tmp_path / "src"
    _image(src / "PIPAL" / "Dist_Imgs" / "x.png", 1, 8)
    tar = tmp_path / "pipal.tar"
    with tarfile.open(tar, "w") as t:
        t.add(src / "PIPAL", arcname="PIPAL")
    data = tar.read_bytes()
    stand_in = PinnedArchive("pipal", tar.as_uri(), hashlib.sha256(data).hexdigest(), len(data), "test")
    got = fetch_archive("pipal", tmp_path / "dest", archive=stand_in)
    assert got.read_bytes() == data and (tmp_path / "dest" / "PIPAL" / "Dist_Imgs" / "x.png").is_file()
    wrong = PinnedArchive("pipal", tar.as_uri(), "0" * 64, len(data), "test")
    with pytest.raises(AesopBenchError, match="sha256 mismatch"):
        fetch_archive("pipal", tmp_path / "dest2", archive=wrong)


# ---------------------------------------------------------------- complementarity


def test_complementarity_on_a_hand_made_example(tmp_path):
    # outcomes on 6 pairs
    x = np.array([1, 0, 0, 1, 0, 1.0])
    y = np.array([0, 1, 0.5, 1, 1, 0.0])
    z = np.array([1, 1, 1, 0, 0, 0.0])
    m = complementarity({"x": x, "y": y, "z": z})
    # x wrong on pairs 1, 2, 4: y gets 1, 0.5, 1 -> 2.5/3; z gets 1, 1, 0 -> 2/3
    assert m["x"]["y"] == (pytest.approx(2.5 / 3), 3) and m["x"]["z"] == (pytest.approx(2 / 3), 3)
    # y wrong on pairs 0, 5 (a tie, pair 2, is not wrong): x gets 1, 1; z gets 1, 0
    assert m["y"]["x"] == (1.0, 2) and m["y"]["z"] == (0.5, 2)
    # z wrong on pairs 3, 4, 5: x 1, 0, 1; y 1, 1, 0
    assert m["z"]["x"] == (pytest.approx(2 / 3), 3) and m["z"]["y"] == (pytest.approx(2 / 3), 3)
    assert m["x"]["x"] == (0.0, 3)
    assert math.isnan(complementarity({"p": np.ones(3), "q": np.zeros(3)})["p"]["q"][0])


# ---------------------------------------------------------------- the score cache


def test_adding_a_metric_computes_that_metric_alone(tmp_path):
    names = [f"{i}.png" for i in range(6)]
    for i, n in enumerate(names):
        _image(tmp_path / n, i, 8)
    pairs = _sbs_csv(tmp_path, [(names[i], names[i + 1], 2, 1) for i in range(0, 6, 2)])
    f1 = Fake({n: float(i) for i, n in enumerate(names)})
    f2 = Fake({n: float(-i) for i, n in enumerate(names)})
    one = Scorer("one", "one-v1", False, f1)
    two = Scorer("two", "two-v1", False, f2)
    run_alignment([f"sbs:{pairs}"], out=tmp_path / "a", scorers=[one], n_boot=0)
    assert f1.calls == 6
    run_alignment([f"sbs:{pairs}"], out=tmp_path / "b", scorers=[one, two], n_boot=0)
    assert (f1.calls, f2.calls) == (6, 6)
    run_alignment([f"sbs:{pairs}"], out=tmp_path / "c", scorers=[one, two], n_boot=0)
    assert (f1.calls, f2.calls) == (6, 6)
    # another version of a metric is computed anew; a file whose bytes change is scored again, alone
    run_alignment([f"sbs:{pairs}"], out=tmp_path / "d", scorers=[Scorer("one", "one-v2", False, f1)], n_boot=0)
    assert f1.calls == 12
    _image(tmp_path / names[0], 99, 8)
    run_alignment([f"sbs:{pairs}"], out=tmp_path / "e", scorers=[one, two], n_boot=0)
    assert (f1.calls, f2.calls) == (13, 7)
    # outputs only under --out
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == [
        "alignment.json", "complementarity_sbs-pairs.csv", "complementarity_sbs-pairs.md",
        "complementarity_sbs-pairs.pdf", "complementarity_sbs-pairs.png", "pairwise.csv", "pairwise.md",
        "scores.csv"]


# ---------------------------------------------------------------- the command


def test_command_end_to_end_with_niqe(tmp_path, shared_data, capsys):
    from aesop_bench.imageio import read_image
    from aesop_bench.metrics.metric import Metric

    mat = shared_data / "weights" / "niqe" / "modelparameters.mat"
    assert main(["weights", "add", "niqe_pristine", str(mat)]) == 0
    root = tmp_path / "hggt"
    _hggt_set(root, "0001", VOTES, seed=1, size=192)
    _hggt_set(root, "0002", {"A": ["Negative", "Positive", "Positive", "Negative"],
                             "B": ["Negative", "Positive", "Positive", "Negative"],
                             "C": ["Negative", "Positive", "Positive", "Negative"]}, seed=2, size=192)
    # a smooth image and a noisy one: people prefer the smooth one in this made-up SBS file
    ramp = torch.linspace(40, 200, 192).expand(3, 192, 192)
    wobble = torch.randn(3, 192, 192, generator=torch.Generator().manual_seed(5)) * 3
    write_image(tmp_path / "smooth.png", (ramp + wobble).round().clamp(0, 255).to(torch.uint8))
    _image(tmp_path / "noisy.png", 7, 192)
    sbs = _sbs_csv(tmp_path, [("smooth.png", "noisy.png", 9, 2), ("noisy.png", "smooth.png", 1, 4)])
    mos = tmp_path / "mos.csv"
    mos.write_text("image,mos\n" + "".join(f"hggt/images/{g}/0001{'' if g == 'original' else '_' + g}.png,{v}\n"
                                          for g, v in zip(("original", "01", "02", "03", "04"),
                                                          (3.0, 4.5, 1.0, 2.0, 3.9))))
    out = tmp_path / "out"
    assert main(["iqa-alignment", "--pairs", f"hggt:{root}", "--pairs", f"sbs:{sbs}", "--mos", str(mos),
                 "--metrics", "niqe", "--out", str(out), "--bootstrap", "300", "--seed", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "counts as half correct" in printed and "pairwise.csv" in printed
    niqe = Metric("niqe")
    score = {}
    for f in sorted(tmp_path.rglob("*.png")):
        if out not in f.parents:
            score[f] = float(niqe(read_image(f))[0])
    rows = {r["dataset"]: r for r in _rows(out / "pairwise.csv")}
    # HGGT: set 0001 -> (orig, 01) enhanced preferred, (orig, 02) original preferred; set 0002 -> 01, 04 original,
    # 02, 03 enhanced; lower NIQE is better
    images = root / "images"
    expected = []
    for name, wins in (("0001", {"01": 1, "02": 0}), ("0002", {"01": 0, "02": 1, "03": 1, "04": 0})):
        o = score[images / "original" / f"{name}.png"]
        for gt, w in wins.items():
            e = score[images / gt / f"{name}_{gt}.png"]
            better = e < o if w == 1 else o < e
            expected.append(1.0 if better else 0.5 if e == o else 0.0)
    assert float(rows["hggt-hggt"]["accuracy"]) == pytest.approx(np.mean(expected))
    assert int(rows["hggt-hggt"]["pairs"]) == 6 and int(rows["hggt-hggt"]["excluded"]) == 2
    sbs_expected = [score[tmp_path / "smooth.png"] < score[tmp_path / "noisy.png"]] * 2
    assert float(rows["sbs-pairs"]["accuracy"]) == pytest.approx(np.mean(sbs_expected))
    (corr,) = _rows(out / "correlation.csv")
    gts = [images / g / f"0001{'' if g == 'original' else '_' + g}.png" for g in ("original", "01", "02", "03", "04")]
    from scipy import stats

    assert float(corr["srcc"]) == pytest.approx(stats.spearmanr([score[g] for g in gts],
                                                                [3.0, 4.5, 1.0, 2.0, 3.9])[0])
    summary = json.loads((out / "alignment.json").read_text())
    assert summary["metrics"]["niqe"]["lower_better"] is True and summary["bootstrap"] == 300
    png = out / "complementarity_hggt-hggt.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same command again reads every score from the cache and writes the same tables
    before = (out / "pairwise.csv").read_text()
    assert main(["iqa-alignment", "--pairs", f"hggt:{root}", "--pairs", f"sbs:{sbs}", "--mos", str(mos),
                 "--metrics", "niqe", "--out", str(out), "--bootstrap", "300", "--seed", "1", "--quiet"]) == 0
    assert (out / "pairwise.csv").read_text() == before


def test_bad_input_is_refused_naming_the_file(tmp_path, capsys):
    _image(tmp_path / "a.png", 0, 8)
    notes = tmp_path / "labels.txt"
    notes.write_text("0001 Positive\n")
    with pytest.raises(InputError, match=r"labels\.txt: not an HGGT label file"):
        read_pairs(f"hggt:{notes}")
    odd = tmp_path / "labels" / "A" / "0001.json"
    odd.parent.mkdir(parents=True)
    odd.write_text(json.dumps({"votes": [1, 2]}))
    with pytest.raises(InputError, match=r"0001\.json: Picture_2 is missing"):
        read_pairs(f"hggt:{odd}")
    as_json = tmp_path / "pairs.json"
    as_json.write_text("[]")
    with pytest.raises(InputError, match=r"pairs\.json: unknown SBS pairs format '\.json'"):
        read_pairs(f"sbs:{as_json}")
    missing = _sbs_csv(tmp_path, [("a.png", "gone.png", 1, 0)])
    with pytest.raises(MissingFileError, match=r"gone\.png"):
        read_pairs(f"sbs:{missing}")
    bad_columns = tmp_path / "cols.csv"
    bad_columns.write_text("left,right\na.png,a.png\n")
    with pytest.raises(InputError, match=r"cols\.csv: column\(s\) image_a, image_b, votes_a, votes_b missing"):
        read_pairs(f"sbs:{bad_columns}")
    with pytest.raises(ConfigError, match="give hggt:PATH or sbs:PATH"):
        read_pairs(str(missing))
    # through the command: exit 2 and a message naming the file, nothing under --out
    assert main(["iqa-alignment", "--pairs", f"sbs:{missing}", "--metrics", "niqe", "--out",
                 str(tmp_path / "out"), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert "gone.png" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert main(["iqa-alignment", "--metrics", "niqe", "--out", str(tmp_path / "out")]) == 2
    assert "nothing to compare with" in capsys.readouterr().err
