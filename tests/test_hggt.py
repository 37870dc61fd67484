"""HGGT's multi-GT sets: label files, effective labels, the folder layout and the GT samplers."""

from __future__ import annotations

import json
import math
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aesop_bench.data import hggt
from aesop_bench.errors import ConfigError, InputError, MissingFileError

P, S, N = "Positive", "Similar", "Negative"


def label_json(name: str, labels) -> dict:
    """An annotator's label file as HGGT's README shows it: Picture_1 is the original (no label)."""
    out = {"Picture_1": {"Name": f"{name}.png", "File": "original", "Label": None}}
    for i, lab in enumerate(labels):
        out[f"Picture_{i + 2}"] = {"Name": f"{name}_0{i + 1}.png", "File": f"0{i + 1}", "Label": lab}
    out["Time_cost"] = {"Start": "2022-08-05 16:56:06", "End": "2022-08-05 16:56:49", "Total": 42}
    return out


def write_set(images: Path, labels: Path, name: str, votes: dict[str, list[str]], size=8, skip=()):
    """One HGGT set: five GT PNGs and the A, B, C label files (``votes[annotator]`` = labels of 01..04)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for gt in hggt.GT_NAMES:
        path = images / gt / (f"{name}.png" if gt == "original" else f"{name}_{gt}.png")
        if path.name in skip:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    for a in hggt.ANNOTATORS:
        (labels / a).mkdir(parents=True, exist_ok=True)
        (labels / a / f"{name}.json").write_text(json.dumps(label_json(name, votes[a])))


VOTES = {"A": [P, P, N, P], "B": [P, S, N, N], "C": [N, P, S, S]}  # effective: P, P, N, S


def test_effective_label_majority_and_all_different():
    assert hggt.effective_label([P, P, N]) == P
    assert hggt.effective_label([N, S, N]) == N
    assert hggt.effective_label([S, S, S]) == S
    assert hggt.effective_label([P, S, N]) == S
    assert hggt.effective_label([N, P, S]) == S


def test_effective_label_refuses_unknown_and_wrong_count():
    with pytest.raises(InputError, match="'Good'"):
        hggt.effective_label([P, "Good", P])
    with pytest.raises(InputError, match="3 votes"):
        hggt.effective_label([P, P])


def test_read_labels_follows_hggt_format(tmp_path):
    f = tmp_path / "0001-586-1469.json"
    f.write_text(json.dumps(label_json("0001-586-1469", [P, S, N, P])))
    assert hggt.read_labels(f) == {"01": P, "02": S, "03": N, "04": P}


@pytest.mark.parametrize("content, fragment", [
    ("not json", "JSON"),
    ("[1, 2]", "JSON object"),
    (json.dumps({"Picture_2": {"Label": P}}), "Picture_3"),
    (json.dumps(label_json("x", [P, P, "Excellent", P])), "'Excellent'"),
    (json.dumps(label_json("x", [P, None, P, P])), "None"),
])
def test_read_labels_refuses_malformed(tmp_path, content, fragment):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(InputError) as e:
        hggt.read_labels(f)
    assert str(f) in str(e.value) and fragment in str(e.value)


def test_read_labels_refuses_file_out_of_position(tmp_path):
    data = label_json("x", [P, P, P, P])
    data["Picture_2"]["File"] = "03"
    f = tmp_path / "x.json"
    f.write_text(json.dumps(data))
    with pytest.raises(InputError, match="Picture_2 has File '03'"):
        hggt.read_labels(f)


def test_read_labels_missing_file(tmp_path):
    with pytest.raises(MissingFileError, match="nope.json"):
        hggt.read_labels(tmp_path / "nope.json")


def test_read_multigt_train_layout(tmp_path):
    root = tmp_path / "Train"
    write_set(root / "images" / "0-20193", root / "labels" / "0-20193", "img0-10-20", VOTES)
    write_set(root / "images" / "0-20193", root / "labels" / "0-20193", "img1-5-6",
              {a: [N, N, N, N] for a in "ABC"})
    items = hggt.read_multigt(root, "train")
    assert [i.name for i in items] == ["img0-10-20", "img1-5-6"]
    first = items[0]
    assert first.lr is None and first.group == "0-20193"
    assert first.gts["original"] == root / "images" / "0-20193" / "original" / "img0-10-20.png"
    assert first.gts["03"] == root / "images" / "0-20193" / "03" / "img0-10-20_03.png"
    assert first.labels == {"01": P, "02": P, "03": N, "04": S}
    assert first.votes["04"] == (P, N, S)
    assert first.positives == ("01", "02")
    assert items[1].positives == ()


def test_read_multigt_test_layout_with_lr(tmp_path):
    root = tmp_path / "Test"
    base = root / "GT" / "Test-100"
    write_set(base / "images", base / "labels", "imgC-1-2", VOTES)
    lr = root / "Blind_Degradation_Benchmark_LQ" / "Test-100" / "Blind_LR" / "imgC-1-2.png"
    lr.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(lr)
    (item,) = hggt.read_multigt(root, "test")
    assert item.lr == lr and item.group == "Test-100"
    assert set(item.gts) == set(hggt.GT_NAMES)


def test_read_multigt_refuses_missing_gt_and_label(tmp_path):
    root = tmp_path / "Train"
    images, labels = root / "images" / "g", root / "labels" / "g"
    write_set(images, labels, "a", VOTES, skip=("a_02.png",))
    (labels / "B" / "a.json").unlink()
    with pytest.raises(MissingFileError) as e:
        hggt.read_multigt(root, "train")
    assert "a_02.png" in str(e.value) and str(labels / "B" / "a.json") in str(e.value)


def test_read_multigt_refuses_bad_split_and_unknown_label(tmp_path):
    with pytest.raises(ConfigError, match="'val'"):
        hggt.read_multigt(tmp_path, "val")
    root = tmp_path / "Train"
    write_set(root / "images" / "g", root / "labels" / "g", "a", {**VOTES, "C": [P, P, "Maybe", P]})
    with pytest.raises(InputError, match="'Maybe'") as e:
        hggt.read_multigt(root, "train")
    assert str(root / "labels" / "g" / "C" / "a.json") in str(e.value)


def item(positives=("01", "02"), name="s"):
    labels = {g: (P if g in positives else N) for g in hggt.ENHANCED}
    return hggt.MultiGTItem(name=name, gts={g: Path(g) for g in hggt.GT_NAMES}, labels=labels)


def draws(sampler, it, n, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    return Counter(sampler.pick(it, g, **kw) for _ in range(n))


def assert_frequencies(counts: Counter, probs: dict, n: int):
    assert set(counts) <= set(probs)
    for gt, p in probs.items():
        sigma = math.sqrt(p * (1 - p) / n)
        assert abs(counts[gt] / n - p) < 5 * sigma + 1e-9, (gt, counts[gt] / n, p)


def test_upos_is_uniform_over_positives():
    n = 6000
    counts = draws(hggt.UPos(), item(("01", "03", "04")), n)
    assert_frequencies(counts, {"01": 1 / 3, "03": 1 / 3, "04": 1 / 3}, n)


def test_upos_refuses_set_without_positive():
    with pytest.raises(InputError, match="no effective Positive"):
        hggt.UPos().pick(item(()), torch.Generator())


SCORES = {"s": {"original": 0.2, "01": 0.9, "02": 0.5, "03": 0.1, "04": 0.7}}


def softmax_by_hand(values: dict, tau: float, sign: float = 1.0) -> dict:
    e = {k: math.exp(sign * v / tau) for k, v in values.items()}
    z = sum(e.values())
    return {k: v / z for k, v in e.items()}


def test_sma_frequencies_match_softmax():
    n, tau = 20000, 0.25
    counts = draws(hggt.SMA(SCORES, tau), item(), n)
    assert_frequencies(counts, softmax_by_hand(SCORES["s"], tau), n)


def test_sma_lower_better_prefers_low_scores():
    n, tau = 20000, 0.25
    counts = draws(hggt.SMA(SCORES, tau, lower_better=True), item(), n)
    probs = softmax_by_hand(SCORES["s"], tau, sign=-1.0)
    assert_frequencies(counts, probs, n)
    assert counts.most_common(1)[0][0] == "03"


def test_smp_only_positives_with_softmax_weights():
    n, tau = 20000, 0.5
    counts = draws(hggt.SMP(SCORES, tau), item(("02", "04")), n)
    assert set(counts) == {"02", "04"}
    assert_frequencies(counts, softmax_by_hand({"02": 0.5, "04": 0.7}, tau), n)


def test_softmax_samplers_refuse_bad_tau_and_missing_scores():
    for tau in (0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="tau"):
            hggt.SMA(SCORES, tau)
    with pytest.raises(InputError, match="'other'"):
        hggt.SMA(SCORES).pick(item(name="other"), torch.Generator())
    partial = {"s": {"01": 1.0, "02": 2.0}}
    with pytest.raises(InputError, match="original"):
        hggt.SMA(partial).pick(item(), torch.Generator())


def test_amo_picks_argmax_first_on_ties():
    patches = {g: torch.full((3, 4, 4), float(i)) for i, g in enumerate(hggt.GT_NAMES)}
    seen = []

    def score(batch):
        seen.append(batch.shape)
        return torch.tensor([0.3, 0.8, 0.1, 0.8, 0.5])  # 01 and 03 tie

    assert hggt.AMO(score).pick(item(), torch.Generator(), patches=patches) == "01"
    assert seen == [torch.Size([5, 3, 4, 4])]
    assert hggt.AMO(score, lower_better=True).pick(item(), torch.Generator(), patches=patches) == "02"

    def mean_score(batch):  # the batch is in GT_NAMES order: the brightest patch is 04
        return batch.mean(dim=(1, 2, 3))

    assert hggt.AMO(mean_score).pick(item(), None, patches=patches) == "04"


def test_amo_refuses_missing_patches_and_bad_scores():
    patches = {g: torch.zeros(3, 2, 2) for g in hggt.GT_NAMES}
    with pytest.raises(InputError, match="same patch"):
        hggt.AMO(lambda b: b.mean((1, 2, 3))).pick(item(), None, patches={"01": patches["01"]})
    with pytest.raises(InputError, match="5 finite"):
        hggt.AMO(lambda b: torch.tensor([1.0, float("nan"), 0, 0, 0])).pick(item(), None, patches=patches)


@pytest.mark.parametrize("sampler", [hggt.UPos(), hggt.SMA(SCORES, 0.3), hggt.SMP(SCORES, 0.3)],
                         ids=["UPos", "SMA", "SMP"])
def test_samplers_deterministic_under_fixed_generator(sampler):
    it = item(("01", "02", "04"))

    def sequence(seed):
        g = torch.Generator().manual_seed(seed)
        return [sampler.pick(it, g) for _ in range(200)]

    a, b = sequence(7), sequence(7)
    assert a == b
    assert a != sequence(8)
